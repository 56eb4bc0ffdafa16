#!/usr/bin/env bash
# Create/refresh .venv with the dev extras, then run the whole test suite (offscreen, CPU).
#   installer/test.sh [pytest args]
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "dev"
cd "$ROOT"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
set +e
python -m pytest "$@"
rc=$?
set -e
# pytest exits 5 when no test was collected: that is a failure here, never a silent pass.
if [ "$rc" -eq 5 ]; then echo "[mama] no tests were collected" >&2; exit 1; fi
exit "$rc"
