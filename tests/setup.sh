#!/usr/bin/env bash
# Create (or reuse) a virtual environment and install maas with its dev tools.
# Usage: bash tests/setup.sh [python] [venv-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${1:-python3}
VENV=${2:-.venv}

# The embedded tritonserver's Python backend stub links the system libpython3.X.
version=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
if ! ldconfig -p 2>/dev/null | grep -q "libpython${version}.so.1.0"; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing libpython${version} for the Triton Python backend stub"
    apt-get update -qq && apt-get install -y -qq "libpython${version}" >/dev/null
  else
    echo "warning: libpython${version}.so.1.0 not found; install it (apt-get install libpython${version})" >&2
  fi
fi

# TorchServe (a peer of the peers benchmark) runs its frontend on Java 17.
if ! command -v java >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing openjdk-17-jre-headless for TorchServe (peers benchmark)"
    apt-get update -qq && apt-get install -y -qq openjdk-17-jre-headless >/dev/null
  else
    echo "note: no java; the TorchServe peer will be skipped (apt-get install openjdk-17-jre-headless)" >&2
  fi
fi

# Monitoring: a real Prometheus (and promtool, which unit-tests the alert rules).
if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing prometheus (with promtool) for the monitoring tests"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends prometheus >/dev/null
  else
    echo "note: no prometheus; monitoring tests will be skipped (apt-get install prometheus)" >&2
  fi
fi

[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install -q --upgrade pip
# strict editable mode links the mapped folders into one static tree that mypy can read too
"$VENV/bin/python" -m pip install -q --config-settings editable_mode=strict -e ".[dev]"
