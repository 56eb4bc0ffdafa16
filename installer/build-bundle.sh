#!/usr/bin/env bash
# Build the standalone folder bundle dist/mama-desktop/ with PyInstaller and CPU torch.
#   installer/build-bundle.sh [--venv DIR] [--dist DIR]
# A separate build venv (default build/bundle-venv) keeps .venv untouched; torch is pinned in
# the same pip command as the project so the CPU build is used (MAMA_TORCH_SPEC overrides).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_VENV="$ROOT/build/bundle-venv"
DIST="$ROOT/dist"
PYTHON="${MAMA_PYTHON:-python3.11}"
while [ $# -gt 0 ]; do
    case "$1" in
        --venv) BUILD_VENV="${2:?}"; shift 2 ;;
        --dist) DIST="${2:?}"; shift 2 ;;
        -h|--help) sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

# The bundle is CPU-only: on an NVIDIA machine ask for the CPU wheel explicitly through
# MAMA_TORCH_SPEC (e.g. a torch-2.13.0+cpu wheel path); elsewhere the pin resolves to it.
source "$ROOT/installer/torch_spec.sh"
TORCH_SPEC="$(mama_torch_spec)"
if [ ! -x "$BUILD_VENV/bin/pyinstaller" ]; then
    "$PYTHON" -m venv "$BUILD_VENV"
    "$BUILD_VENV/bin/python" -m pip install -q --disable-pip-version-check \
        "$TORCH_SPEC" "$ROOT" pyinstaller==6.22.3
fi
if [ -n "$("$BUILD_VENV/bin/python" -c 'import torch; print(torch.version.cuda or "")')" ]; then
    echo "warning: the build venv's torch carries CUDA: the bundle will be several GB" >&2
fi
cd "$ROOT"
"$BUILD_VENV/bin/pyinstaller" --noconfirm --clean --log-level WARN \
    --distpath "$DIST" --workpath "$ROOT/build/pyinstaller" installer/mama-desktop.spec
echo "bundle: $DIST/mama-desktop/mama-desktop ($(du -sh "$DIST/mama-desktop" | cut -f1))"
