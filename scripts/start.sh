#!/usr/bin/env bash
# Installs tunelab into .venv and starts the studio on its embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/tunelab models pull smollm2-135m-instruct && exec .venv/bin/tunelab serve --example examples/identity-lora.yaml "$@"
