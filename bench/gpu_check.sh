#!/usr/bin/env bash
# One prepared check for an accelerator machine: installs the project (from wheels carried in
# .whl/ when the machine has no index), runs the CUDA tests, then bench/gpu_check.py.
set -euo pipefail
cd "$(dirname "$0")/.."
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
python3 -m pytest -q tests/gpu
python3 bench/gpu_check.py
