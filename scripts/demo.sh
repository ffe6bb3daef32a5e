#!/usr/bin/env bash
# The main job on the bundled default (creates .venv on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(scripts/bootstrap.sh full)"
exec "$venv/bin/python" -m launch.train --demo "$@"
