#!/usr/bin/env bash
# Cluster mode on loopback (`pollution-gateway cluster-demo`): three clustered nats-servers,
# PostgreSQL, InfluxDB, Mosquitto and HAProxy (HJ 212 on 127.0.0.1:9212, send-proxy-v2) in
# front of two ingestion nodes (ingest-1's API on 127.0.0.1:9280), two writers and two rule
# workers, each a process with its data under var/cluster/nodes/. With --simulate the simulator
# plays its scripted day through HAProxy and Mosquitto and the anomalies are printed as the
# rule workers record them; --exit stops after it. Ctrl-C stops everything.
# Logs: var/cluster/logs/. Other options: pollution-gateway cluster-demo --help.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/pollution-gateway cluster-demo --workdir var/cluster "$@"
