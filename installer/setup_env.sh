#!/usr/bin/env bash
# Shared by run.sh and test.sh: create or refresh .venv only when the inputs changed.
# Usage: source installer/setup_env.sh [dev]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${MAMA_VENV:-$ROOT/.venv}"
PYTHON="${MAMA_PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
EXTRAS="${1:-}"

# torch: the same pin gets the CUDA build on an NVIDIA machine and the CPU build elsewhere
# (installer/torch_spec.sh, shared with install-linux.sh). MAMA_TORCH_SPEC overrides.
source "$ROOT/installer/torch_spec.sh"
TORCH_SPEC="$(mama_torch_spec)"

TARGET="."
[ -n "$EXTRAS" ] && TARGET=".[$EXTRAS]"
STAMP_INPUT="$(cat "$ROOT/pyproject.toml"; echo "$TORCH_SPEC $EXTRAS $PYTHON")"
STAMP="$(printf '%s' "$STAMP_INPUT" | sha256sum | cut -c1-16)"
STAMP_FILE="$VENV/.mama-stamp-${EXTRAS:-base}"

if [ ! -x "$VENV/bin/python" ]; then
    echo "[mama] creating $VENV with $PYTHON" >&2
    "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$STAMP_FILE" ] || [ "$(cat "$STAMP_FILE")" != "$STAMP" ]; then
    echo "[mama] installing packages into $VENV (torch: $TORCH_SPEC)" >&2
    # torch goes in the same pip command as the rest, so nothing pulls a different build.
    (cd "$ROOT" && "$VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "$TORCH_SPEC" -e "$TARGET")
    echo "$STAMP" > "$STAMP_FILE"
fi
export PATH="$VENV/bin:$PATH"
# Nothing may download weights or data at run time (docs/method.md §7).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
