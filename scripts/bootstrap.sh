#!/usr/bin/env bash
# Create (once) and fill a virtual environment, then print its path.
#   scripts/bootstrap.sh full   -> .venv     Python 3.11, everything incl. torch/keras references
#   scripts/bootstrap.sh jax    -> .venv312  Python 3.12.1, newest jax/flax, no torch
# A stamp file holding a hash of pyproject.toml makes re-runs instant.
set -euo pipefail
cd "$(dirname "$0")/.."
kind="${1:-full}"
case "$kind" in
  full) venv=.venv;    py="python3";                        extras="[weights,test]" ;;
  jax)  venv=.venv312; py="env PYENV_VERSION=3.12.1 python3"; extras="" ;;
  *) echo "usage: $0 full|jax" >&2; exit 2 ;;
esac
stamp="$venv/.stamp"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "[bootstrap] preparing $venv ($kind); pip log in $venv.log ..." >&2
  {
    [ -x "$venv/bin/python" ] || $py -m venv "$venv"
    "$venv/bin/python" -m pip install --upgrade pip
    if [ "$kind" = full ]; then
      # torch first, pinned: on 3.11 this wheel is on local disk (see STACK_NOTES).
      "$venv/bin/python" -m pip install "torch==2.13.0"
      "$venv/bin/python" -m pip install -e ".$extras"
    else
      "$venv/bin/python" -m pip install --upgrade -e ".[jaxtest]"
    fi
  } >"$venv.log" 2>&1 || { tail -n 40 "$venv.log" >&2; echo "[bootstrap] failed; see $venv.log" >&2; exit 1; }
  echo "$want" > "$stamp"
fi
echo "$venv"
