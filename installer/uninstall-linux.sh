#!/usr/bin/env bash
# Remove MaMA Workstation installed by install-linux.sh: the prefix (venv, resources), the
# launchers, the desktop entry and the icons. User data (models, search indexes, caches,
# settings, logs) is kept unless you agree when asked, or pass --purge.
#
#   PREFIX/uninstall.sh [--purge | --keep-data] [--prefix DIR]
#
# Without a terminal to ask on, user data is kept (use --purge to remove it).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PREFIX="$HERE"   # the copy in the prefix removes its own prefix
[ -f "$HERE/installed-files.txt" ] || PREFIX="${XDG_DATA_HOME:-$HOME/.local/share}/mama-workstation/app"
DATA_MODE="ask"

say() { echo "[mama-uninstall] $*" >&2; }
die() { echo "[mama-uninstall] error: $*" >&2; exit 1; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --purge) DATA_MODE="purge"; shift ;;
            --keep-data) DATA_MODE="keep"; shift ;;
            --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
            -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    # Refuse anything that does not look like our prefix: this script runs rm -rf on it.
    [ -f "$PREFIX/installed-files.txt" ] && [ -d "$PREFIX/venv" ] \
        || die "$PREFIX is not a MaMA Workstation install (no installed-files.txt / venv)"
}

# The user folders the app writes (mama_core.paths: platformdirs + MAMA_*_DIR overrides),
# asked from the installed venv before it is deleted.
user_dirs() {
    "$PREFIX/venv/bin/python" - <<'PY' 2>/dev/null || default_user_dirs
import os
import platformdirs as p
for env, kind in (("MAMA_DATA_DIR", "data"), ("MAMA_CACHE_DIR", "cache"),
                  ("MAMA_CONFIG_DIR", "config"), ("MAMA_LOG_DIR", "log")):
    print(os.environ.get(env) or getattr(p, f"user_{kind}_dir")("mama-workstation", "mama"))
PY
}

default_user_dirs() {  # platformdirs' Linux defaults, when the venv cannot answer
    echo "${MAMA_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/mama-workstation}"
    echo "${MAMA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/mama-workstation}"
    echo "${MAMA_CONFIG_DIR:-${XDG_CONFIG_HOME:-$HOME/.config}/mama-workstation}"
    echo "${MAMA_LOG_DIR:-${XDG_STATE_HOME:-$HOME/.local/state}/mama-workstation/log}"
}

remove_listed_files() {
    while IFS= read -r path; do
        [ -n "$path" ] && rm -f -- "$path" && say "removed $path"
    done < "$PREFIX/installed-files.txt"
    local apps="${XDG_DATA_HOME:-$HOME/.local/share}/applications"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" 2>/dev/null || true
}

want_data_removed() {
    case "$DATA_MODE" in
        purge) return 0 ;;
        keep) return 1 ;;
    esac
    [ -t 0 ] || { say "no terminal to ask on: keeping user data (--purge removes it)"; return 1; }
    printf 'Also delete your models, search indexes, caches, settings and logs in:\n%s\n[y/N] ' "$1" >&2
    local answer; read -r answer
    [[ "$answer" =~ ^[Yy] ]]
}

remove_user_data() {  # remove_user_data DIR...: the user folders (the prefix may sit inside one)
    local dir
    for dir in "$@"; do
        [ -d "$dir" ] && rm -rf -- "$dir" && say "removed $dir"
    done
    return 0
}

main() {
    parse_args "$@"
    local dirs; dirs="$(user_dirs)"
    remove_listed_files
    rm -rf -- "$PREFIX"
    say "removed $PREFIX"
    # An empty parent left by the default prefix (.../mama-workstation/app) goes too.
    rmdir -- "$(dirname "$PREFIX")" 2>/dev/null || true
    local existing=()
    while IFS= read -r d; do [ -n "$d" ] && [ -d "$d" ] && existing+=("$d"); done <<< "$dirs"
    if [ "${#existing[@]}" -gt 0 ]; then
        if want_data_removed "$(printf '  %s\n' "${existing[@]}")"; then
            remove_user_data "${existing[@]}"
        else
            say "kept user data: ${existing[*]}"
        fi
    fi
    say "MaMA Workstation is uninstalled"
}

main "$@"
