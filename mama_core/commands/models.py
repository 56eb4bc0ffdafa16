"""`mama models [list|activate ID|rollback|delete ID|export ID ZIP]`: the model registry."""

from __future__ import annotations

import argparse

from mama_core.commands._output import print_json, print_table
from mama_core.errors import ConfigError, RegistryError

NAME = "models"
HELP = "list model versions, activate one, roll back, delete, or export one as a zip"
ACTIONS = {"list": 0, "activate": 1, "rollback": 0, "delete": 1, "export": 2}
USAGE = "mama models [list] | activate ID | rollback | delete ID | export ID ZIP"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # Positionals rather than sub-subparsers so that `--json` works anywhere on the line.
    parser.add_argument("action", nargs="?", default="list", choices=list(ACTIONS), help=USAGE)
    parser.add_argument("operands", nargs="*", metavar="ARG", help="version ID (and ZIP for export)")


def key_metric(report: dict | None) -> str:
    """A one-cell summary of a version's fine-tuning report: new bACC (before)."""
    if not report or not isinstance(report.get("new"), dict):
        return "-"
    new = report["new"].get("balanced_accuracy")
    if new is None:
        return "-"
    text = f"{report.get('task', '?')} bACC {new:.3f}"
    before = (report.get("baseline") or {}).get("balanced_accuracy")
    return f"{text} (was {before:.3f})" if before is not None else text


def _registry_with_demo():
    from mama_core.registry import Registry

    registry = Registry()
    try:
        registry.active()  # registers and activates the shipped demo on a fresh install
    except RegistryError:
        pass  # no demo built yet: list whatever is there
    return registry


def _list(registry, as_json: bool) -> int:
    versions, active = registry.list(), registry.active_id()
    if as_json:
        print_json({"active": active, "versions": [
            {**v.to_json(), "id": v.id, "active": v.id == active, "key_metric": key_metric(v.report)} for v in versions]})
        return 0
    rows = [("*" if v.id == active else "", v.id, v.name, v.kind, v.created, v.parent or "-", key_metric(v.report))
            for v in versions]
    print_table(["", "id", "name", "kind", "created", "parent", "key metric"], rows)
    if not versions:
        print("\nno model versions yet (build the demo model, train, import or fine-tune one)")
    return 0


def _done(as_json: bool, action: str, version, text: str) -> int:
    if as_json:
        print_json({"action": action, "id": version if isinstance(version, str) else version.id})
    else:
        print(text)
    return 0


def run(args: argparse.Namespace) -> int:
    need = ACTIONS[args.action]
    if len(args.operands) != need:
        raise ConfigError(f"'{args.action}' takes {need} argument(s), got {len(args.operands)}; usage: {USAGE}",
                          field="models")
    registry = _registry_with_demo()
    ops = args.operands
    if args.action == "list":
        return _list(registry, args.json)
    if args.action == "activate":
        version = registry.activate(ops[0])
        return _done(args.json, "activate", version, f"active model: {version.id}")
    if args.action == "rollback":
        version = registry.rollback()
        return _done(args.json, "rollback", version, f"rolled back; active model: {version.id}")
    if args.action == "delete":
        registry.delete(ops[0])
        return _done(args.json, "delete", ops[0], f"deleted {ops[0]}")
    path = registry.export(ops[0], ops[1])
    if args.json:
        print_json({"action": "export", "id": ops[0], "zip": str(path)})
    else:
        print(f"exported {ops[0]} to {path} (check the data licence before sharing it)")
    return 0
