#!/usr/bin/env bash
# Shared torch selection for setup_env.sh (the repository's .venv) and install-linux.sh (an
# installed copy). Sourced, never run. Prints the pip requirement for torch.
#
# The same pin gets the CUDA build on an NVIDIA machine (PyPI's default Linux wheel carries
# CUDA) and the CPU build elsewhere, where a local CPU wheel is offered through pip's
# find-links (docs/method.md §7). MAMA_TORCH_SPEC overrides it with one pip requirement or a wheel
# path, e.g. MAMA_TORCH_SPEC=/opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl
MAMA_TORCH_PIN="torch==2.13.0"

mama_torch_spec() {
    if [ -n "${MAMA_TORCH_SPEC:-}" ]; then
        printf '%s\n' "$MAMA_TORCH_SPEC"
    elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        printf '%s\n' "$MAMA_TORCH_PIN"   # CUDA build from the index
    else
        printf '%s\n' "$MAMA_TORCH_PIN"   # CPU build where a local CPU wheel is offered
    fi
}

# "cuda" when an NVIDIA driver answers, else "cpu" (for messages only).
mama_torch_flavour() {
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then echo cuda; else echo cpu; fi
}
