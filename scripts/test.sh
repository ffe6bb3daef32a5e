#!/usr/bin/env bash
# Run the test suite in its own virtual environment (created on first use).
#   scripts/test.sh [pytest args]            Python 3.11, full suite (torch/keras references included)
#   scripts/test.sh --jax-only [pytest args] Python 3.12.1, newest jax/flax, tests not marked `foreign`
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${1:-}" = "--jax-only" ]; then
  shift
  venv="$(scripts/bootstrap.sh jax)"
  exec "$venv/bin/python" -m pytest -m "not foreign and not gpu" "$@"
fi
venv="$(scripts/bootstrap.sh full)"
exec "$venv/bin/python" -m pytest -m "not gpu" "$@"
