#!/usr/bin/env bash
# Create/refresh .venv when needed, then start the desktop app with the given arguments.
#   installer/run.sh --demo
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" ""
exec mama-desktop "$@"
