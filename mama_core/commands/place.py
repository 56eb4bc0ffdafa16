"""`mama place FILE... --side L --view CC` (or `--clear`, or `--table places.csv`): place
images by hand.

The placement is kept per file in the user's data dir and used by every command and the
desktop (docs/data.md "Fixing a misplaced image")."""

from __future__ import annotations

import argparse
from pathlib import Path

from mama_core.commands._output import print_json, print_table

NAME = "place"
HELP = "set (or --clear) the side and view of images by hand; every command then uses it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="*", help="DICOM or image files")
    parser.add_argument("--table", default=None, metavar="CSV",
                        help="CSV with columns path, laterality, view (paths relative to the CSV's folder)")
    parser.add_argument("--side", choices=["L", "R", "l", "r"], default=None, help="laterality L or R")
    parser.add_argument("--view", default=None, help="CC, MLO, ML, LM, XCCL, ... (ML and MLO differ)")
    parser.add_argument("--clear", action="store_true", help="forget the manual placement")


def run(args: argparse.Namespace) -> int:
    from mama_core.dicom import clear_override, get_override, set_override
    from mama_core.dicom.overrides import set_overrides_from_table
    from mama_core.errors import ConfigError

    if args.table:
        count = set_overrides_from_table(Path(args.table))
        print_json({"placed": count}) if args.json else print(f"{count} files placed from {args.table}")
        return 0
    if not args.files:
        raise ConfigError("name the files to place, or give --table")
    if not args.clear and args.side is None and args.view is None:
        raise ConfigError("give --side and/or --view, or --clear")
    rows = []
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            raise ConfigError("no such file", path)
        if args.clear:
            clear_override(path)
        else:
            set_override(path, args.side, args.view)
        side, view = get_override(path) or (None, None)
        rows.append((str(path), side or "-", view or "-"))
    if args.json:
        print_json({"placed": [{"path": p, "side": s, "view": v} for p, s, v in rows]})
    else:
        print_table(["file", "manual side", "manual view"], rows)
    return 0
