#!/usr/bin/env bash
# Installs tunelab with its test tools into .venv and runs the whole test suite
# (slow tests included). Extra arguments go to pytest, e.g. -m "not slow".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh "[dev]"
export HF_HUB_OFFLINE=1
# The dashboard's browser tests drive Debian's chromium; install it when we can (root + apt).
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium)
fi
.venv/bin/ruff check src tests benchmarks
.venv/bin/python -m pytest "$@"
