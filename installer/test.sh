#!/usr/bin/env bash
# Create/refresh .venv with the dev extras, then run the test suite (offscreen, CPU).
#   installer/test.sh [pytest args]          the default set: every test not marked `slow`
#   installer/test.sh --slow [pytest args]   only the `slow` tests (kills, paper shapes, big fuzz runs)
#   installer/test.sh --all [pytest args]    both
# A `-m EXPR` among the pytest args replaces the selection (pytest keeps the last -m).
set -euo pipefail
SELECT=(-m "not slow")
case "${1:-}" in
    --slow) SELECT=(-m slow); shift ;;
    --all) SELECT=(); shift ;;
esac
source "$(dirname "${BASH_SOURCE[0]}")/setup_env.sh" "dev"
cd "$ROOT"
export QT_QPA_PLATFORM="${QT_QPA_PLATFORM:-offscreen}"
set +e
python -m pytest "${SELECT[@]}" "$@"
rc=$?
set -e
# pytest exits 5 when no test was collected: that is a failure here, never a silent pass.
if [ "$rc" -eq 5 ]; then echo "[mama] no tests were collected" >&2; exit 1; fi
exit "$rc"
