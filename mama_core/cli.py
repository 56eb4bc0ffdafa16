"""The `mama` command: a thin dispatcher over `mama_core.commands.*`.

Each command module exposes `NAME`, `HELP`, `add_arguments(parser)` and `run(args) -> int`.
Every command takes `--json` for machine-readable output. MamaErrors become a one-line
message and exit code 2; nothing else is caught, so real bugs keep their traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from mama_core.errors import MamaError

# Order = order in `mama --help`.
COMMAND_MODULES = [
    "demo_data", "studies", "place", "caption",
    "train", "export",
    "predict", "query", "index", "search", "eval", "import_checkpoint", "calibrate",
    "finetune", "models", "datasets",
    "pacs", "report", "config",
]


def _load_commands() -> list:
    # Every command ships with the package: a missing one is a broken install, not a skip.
    return [importlib.import_module(f"mama_core.commands.{name}") for name in COMMAND_MODULES]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mama", description="MaMA workstation engine (research use only — not for diagnosis).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _load_commands():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP)
        p.add_argument("--json", action="store_true", help="machine-readable output (JSON)")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Nothing may download weights or data at run time (docs/method.md §7).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 1
    try:
        return int(args._run(args) or 0)
    except MamaError as exc:
        print(f"mama {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mama {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
