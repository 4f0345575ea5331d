#!/usr/bin/env bash
# ViT-B/16, SigLIP B/16 (chunked sigmoid loss) and ViViT-B/16x2 FE train steps on one GPU in
# bfloat16 with cuDNN fused attention: step time, MFU and peak memory per model as JSON
# (also written to benchmarks/gpu.json). Under 5 minutes on an H100-class GPU. Refuses with
# one "Error:" line and exit status 2 without a GPU. Options: see tools/benchmark_gpu.py.
#   benchmarks/gpu.sh [--steps 10] [--warmup 3] [--out benchmarks/gpu.json]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
exec "${PYTHON:-python}" -m tools.benchmark_gpu "$@"
