#!/usr/bin/env bash
# Sets up what is missing and runs the whole test suite (it starts its own InfluxDB and
# Mosquitto on free ports), then the type and lint checks.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/python -m pytest "$@"
.venv/bin/ruff check gateway adapters devkit tests
.venv/bin/ruff format --check gateway adapters devkit tests
.venv/bin/mypy
