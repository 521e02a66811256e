#!/usr/bin/env bash
# The product in one command: sets up what is missing, starts InfluxDB and Mosquitto on loopback
# (data under var/demo, wiped at each start), the gateway (HJ 212 on 127.0.0.1:9212, API and page
# on 127.0.0.1:9280) and three simulated enterprises replaying yesterday with its faults; prints
# the anomaly stream as it happens and leaves the page open. Ctrl-C stops all of it.
# `scripts/run.sh --gateway` runs the gateway alone on config/gateway.toml (data under var/).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ "${1:-}" == "--gateway" ]]; then
  shift
  exec .venv/bin/pollution-gateway run --config "${GATEWAY_CONFIG:-config/gateway.toml}" --local-stack "$@"
fi
exec .venv/bin/pollution-gateway demo "$@"
