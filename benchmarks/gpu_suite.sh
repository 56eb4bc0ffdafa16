#!/usr/bin/env bash
# One-command GPU suite: the paper's recipe at its real shapes on one CUDA device, ours vs the
# reference-style baseline, MFU, inference latencies; prints the figures and appends them to
# docs/benchmarks.md (see benchmarks/gpu_suite.py for what is measured and how).
#
#   bash benchmarks/gpu_suite.sh                      # the GPU run (about 5-8 minutes)
#   bash benchmarks/gpu_suite.sh --device cpu --tiny  # end-to-end check at tiny widths
#
# Runs from the source tree (no install) with whatever Python has torch, transformers, peft,
# safetensors and tokenizers ($PYTHON, else the first of python3 / python that imports torch);
# nothing is downloaded. Small pure-Python
# packages the engine imports but such a machine may lack are unpacked from the wheels in
# $MAMA_SUITE_WHEELS (default benchmarks/wheels/, git-ignored: fetch them where there is a
# network and carry the folder with the tree), e.g.
#   python -m pip download --no-deps -d benchmarks/wheels platformdirs pydicom
# platformdirs is needed by every part (mama_core.paths), pydicom by the inference part.
# Parts that still miss a module are reported as skipped, naming it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-}"
if [ -z "$PY" ]; then  # the first Python on PATH that has torch
    for cand in python3 python; do
        if command -v "$cand" > /dev/null && "$cand" -c "import torch" 2> /dev/null; then PY="$cand"; break; fi
    done
fi
[ -n "$PY" ] || { echo "gpu_suite: no Python with torch found (set PYTHON)" >&2; exit 2; }
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
WORK="$(mktemp -d "${TMPDIR:-/tmp}/mama-gpu-suite.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
# Private user folders: the suite never touches the user's own MaMA data, cache or config.
export MAMA_DATA_DIR="$WORK/data" MAMA_CACHE_DIR="$WORK/cache" MAMA_CONFIG_DIR="$WORK/config" MAMA_LOG_DIR="$WORK/log"
WHEELS="${MAMA_SUITE_WHEELS:-benchmarks/wheels}"
if compgen -G "$WHEELS/*.whl" > /dev/null; then
    for wheel in "$WHEELS"/*.whl; do "$PY" -m zipfile -e "$wheel" "$WORK/site"; done  # pure-Python: unpacking installs
    export PYTHONPATH="$PYTHONPATH:$WORK/site"
fi
# 8 minutes at most, whatever happens; the driver itself stops starting new parts at ~7.
timeout 480 "$PY" benchmarks/gpu_suite.py "$@"
