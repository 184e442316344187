#!/usr/bin/env bash
# Set up a virtual environment with the project and its dev tools, then run every check:
# ruff (lint + format), mypy (strict), pytest (unit tests, then integration tests that
# export real models and start a real tritonserver on free ports; the session's export is
# also compared with the committed model repository, as `maas export --check` would).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

bash tests/setup.sh "$PYTHON" "$VENV"
source "$VENV/bin/activate"

echo "== ruff"
ruff check src export clients benchmarks tests
ruff format --check src export clients benchmarks tests
echo "== mypy"
mypy -p maas
mypy tests
echo "== pytest"
python -m pytest -ra -m "not slow" --durations=15 "$@"
