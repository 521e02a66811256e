#!/usr/bin/env bash
# Installs what the gateway needs on Debian: the influxdb, mosquitto, haproxy, nats-server and
# postgresql packages, and the Python packages of requirements.lock in a virtual environment (.venv).
# Safe to run again: it skips what is there (the Python packages until pyproject.toml or the
# lock changes).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v influxd >/dev/null 2>&1 || [ -x /usr/bin/influxd ] || need+=(influxdb)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || need+=(mosquitto)
# the PROXY protocol tests run the HJ 212 server behind a real HAProxy
command -v haproxy >/dev/null 2>&1 || [ -x /usr/sbin/haproxy ] || need+=(haproxy)
# cluster mode's durable log (scripts/cluster.sh, tests/cluster): Debian's NATS server
command -v nats-server >/dev/null 2>&1 || [ -x /usr/bin/nats-server ] || need+=(nats-server)
# cluster mode's shared state (tests/pg): Debian's PostgreSQL (initdb under /usr/lib/postgresql)
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || need+=(postgresql)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || need+=(python3-venv)
# the page's tests run in a real headless browser (Debian's chromium)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing Debian packages: ${need[*]}" >&2
    sudo_cmd=()
    [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
    # the packages' own services are not used: the gateway starts its own, on loopback
    for svc in influxdb mosquitto haproxy nats-server postgresql; do
        "${sudo_cmd[@]}" service "$svc" stop >/dev/null 2>&1 || true
    done
fi

if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
stamp=.venv/.installed
lock=requirements.lock
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$lock" -nt "$stamp" ]; then
    .venv/bin/python -m pip install -q --upgrade pip
    # every runtime and dev package at its pinned version, checked against its hashes; then the
    # gateway itself, editable, without resolving anything more
    .venv/bin/python -m pip install -q --require-hashes -r "$lock"
    .venv/bin/python -m pip install -q --no-deps -e .
    touch "$stamp"
fi
