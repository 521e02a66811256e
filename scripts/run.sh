#!/usr/bin/env bash
# Sets up what is missing, starts InfluxDB and Mosquitto on loopback with their data under
# var/, and runs the gateway on config/gateway.toml (HJ 212 on port 9212). Ctrl-C stops all.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/pollution-gateway run --config "${GATEWAY_CONFIG:-config/gateway.toml}" --local-stack "$@"
