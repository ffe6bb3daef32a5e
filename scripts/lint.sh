#!/usr/bin/env bash
# Lint as CI does: `ruff check` and `ruff format --check` over the whole tree, with the ruff
# version pinned in pyproject's `test` extra (rules change between ruff releases).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="$(scripts/bootstrap.sh full)"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
