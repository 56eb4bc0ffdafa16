#!/usr/bin/env bash
# Install MaMA Workstation for the current user (Linux): a virtualenv inside a prefix, the
# `mama-desktop` and `mama` launchers, a desktop entry with its icon, and an uninstaller.
#
#   installer/install-linux.sh [--prefix DIR] [--bin-dir DIR] [--python PY]
#
# Needs Python 3.11 and access to the package index (or local wheels) at install time only;
# nothing downloads weights or data at run time. See docs/installing.md.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_HOME="${XDG_DATA_HOME:-$HOME/.local/share}"
PREFIX="$DATA_HOME/mama-workstation/app"
BIN_DIR="$HOME/.local/bin"
PYTHON="${MAMA_PYTHON:-python3.11}"

usage() { sed -n '2,9p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }
die() { echo "[mama-install] error: $*" >&2; exit 1; }
say() { echo "[mama-install] $*" >&2; }

parse_args() {
    while [ $# -gt 0 ]; do
        case "$1" in
            --prefix) PREFIX="${2:?--prefix needs a folder}"; shift 2 ;;
            --bin-dir) BIN_DIR="${2:?--bin-dir needs a folder}"; shift 2 ;;
            --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
            -h|--help) usage; exit 0 ;;
            *) die "unknown argument: $1 (see --help)" ;;
        esac
    done
    mkdir -p "$PREFIX" "$BIN_DIR"
    PREFIX="$(cd "$PREFIX" && pwd)"
    BIN_DIR="$(cd "$BIN_DIR" && pwd)"
}

check_python() {
    command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found: install Python 3.11 (or pass --python)"
    "$PYTHON" -c 'import sys; sys.exit(0 if (3, 11) <= sys.version_info[:2] < (3, 13) else 1)' \
        || die "$PYTHON is $("$PYTHON" -V 2>&1); MaMA Workstation needs Python 3.11 or 3.12"
    "$PYTHON" -c 'import venv, ensurepip' 2>/dev/null \
        || die "$PYTHON lacks venv/ensurepip (Debian/Ubuntu: apt install python3.11-venv)"
}

install_packages() {
    source "$SRC/installer/torch_spec.sh"
    local torch_spec; torch_spec="$(mama_torch_spec)"
    say "creating $PREFIX/venv ($("$PYTHON" -V 2>&1))"
    "$PYTHON" -m venv --clear "$PREFIX/venv"
    say "installing packages (torch: $torch_spec, $(mama_torch_flavour) machine) — a few minutes"
    # torch in the same pip command as the project, so no other torch build is pulled (docs/method.md §7).
    # A regular (not editable) install: the prefix does not depend on this source tree.
    "$PREFIX/venv/bin/python" -m pip install -q --disable-pip-version-check "$torch_spec" "$SRC"
    # resources/ (configs, templates, demo model, icons) sit beside the venv; the launchers
    # point MAMA_RESOURCES at them (mama_core.paths.resources_dir honours it).
    rm -rf "$PREFIX/resources"
    cp -R "$SRC/resources" "$PREFIX/resources"
    cp "$SRC/installer/uninstall-linux.sh" "$PREFIX/uninstall.sh"
    chmod +x "$PREFIX/uninstall.sh"
}

write_launcher() {  # write_launcher NAME: a wrapper in BIN_DIR around the venv's entry point
    local target="$BIN_DIR/$1"
    cat > "$target" <<LAUNCHER
#!/usr/bin/env bash
# MaMA Workstation launcher (written by install-linux.sh; removed by $PREFIX/uninstall.sh)
export MAMA_RESOURCES="$PREFIX/resources"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$PREFIX/venv/bin/$1" "\$@"
LAUNCHER
    chmod +x "$target"
    echo "$target" >> "$PREFIX/installed-files.txt"
}

install_icons() {
    local icons="$DATA_HOME/icons/hicolor"
    mkdir -p "$icons/scalable/apps" "$icons/256x256/apps"
    cp "$SRC/resources/icons/mama-desktop.svg" "$icons/scalable/apps/mama-desktop.svg"
    echo "$icons/scalable/apps/mama-desktop.svg" >> "$PREFIX/installed-files.txt"
    # A PNG too, for launchers that ignore SVG; rendered with the Qt just installed.
    if QT_QPA_PLATFORM=offscreen "$PREFIX/venv/bin/python" "$SRC/installer/render_icon.py" \
        "$icons/scalable/apps/mama-desktop.svg" "$icons/256x256/apps/mama-desktop.png" 256; then
        echo "$icons/256x256/apps/mama-desktop.png" >> "$PREFIX/installed-files.txt"
    else
        say "warning: could not render the PNG icon; the SVG icon is installed"
    fi
}

write_desktop_entry() {
    local apps="$DATA_HOME/applications"
    mkdir -p "$apps"
    cat > "$apps/mama-workstation.desktop" <<ENTRY
[Desktop Entry]
Type=Application
Version=1.0
Name=MaMA Workstation
GenericName=Mammography reading workstation
Comment=Research use only - not for diagnosis
Exec=$BIN_DIR/mama-desktop %F
Icon=$DATA_HOME/icons/hicolor/scalable/apps/mama-desktop.svg
Terminal=false
Categories=Science;MedicalSoftware;Graphics;
Keywords=mammography;DICOM;MaMA;
StartupWMClass=mama-desktop
ENTRY
    echo "$apps/mama-workstation.desktop" >> "$PREFIX/installed-files.txt"
    command -v update-desktop-database >/dev/null 2>&1 && update-desktop-database -q "$apps" 2>/dev/null || true
}

main() {
    parse_args "$@"
    check_python
    : > "$PREFIX/installed-files.txt"   # what lives outside the prefix; uninstall.sh reads it
    install_packages
    write_launcher mama-desktop
    write_launcher mama
    install_icons
    write_desktop_entry
    say "installed into $PREFIX"
    say "run: $BIN_DIR/mama-desktop --demo    uninstall: $PREFIX/uninstall.sh"
    case ":$PATH:" in *":$BIN_DIR:"*) ;; *) say "note: $BIN_DIR is not on your PATH" ;; esac
}

main "$@"
