"""`mama config show FILE`: a training config as it will run, every option explained.

The help texts and defaults come from the typed configs themselves (dataclass field
metadata "help", as peft does), so this listing cannot drift from the code. The model and
loss sections are shown through their own configs (`ModelConfig`, `LossConfig`), resolved
the way a run resolves them (e.g. `image_size` copied into `model.vision.image_size`).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass
from typing import Any, Iterator

from mama_core.commands._output import print_json

NAME = "config"
HELP = "show a training config resolved, with every option's help text and default (or the fine-tuning options)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="print the resolved config with help texts and defaults",
                          description="print the resolved config with help texts and defaults")
    show.add_argument("file", nargs="?", default=None,
                      help="training config YAML (e.g. resources/configs/demo.yaml); none = the defaults")
    show.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a value as `mama train --set` does (repeatable)")
    show.add_argument("--finetune", action="store_true",
                      help="list the fine-tuning options (`mama finetune`, the desktop's fine-tune dialog) instead")
    show.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output (JSON)")


@dataclass
class Option:
    key: str  # dotted, as `--set` takes it
    value: Any
    default: Any
    help: str

    @property
    def changed(self) -> bool:
        return self.value != self.default

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "value": _plain(self.value), "default": _plain(self.default), "help": self.help,
                "changed": self.changed}


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _default(f: dataclasses.Field) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def options(config: Any, prefix: str = "", sections: dict[str, Any] | None = None) -> Iterator[Option]:
    """Every leaf option of a dataclass config, depth first in declaration order.

    `sections` replaces a field's value by a resolved dataclass (TrainConfig keeps the model
    and loss sections as plain dicts; their typed configs own the options and help)."""
    for f in dataclasses.fields(config):
        value = (sections or {}).get(f.name, getattr(config, f.name))
        key = f"{prefix}{f.name}"
        if dataclasses.is_dataclass(value):
            yield from options(value, key + ".")
        else:
            yield Option(key, value, _default(f), f.metadata.get("help", ""))


def training_options(file: str | None, overrides: list[str]) -> list[Option]:
    from mama_core.training import load_config

    config = load_config(file, overrides)
    return list(options(config, sections={"model": config.model_config(), "loss": config.loss_config()}))


def finetune_options() -> list[Option]:
    from mama_core.finetune import FinetuneConfig

    return list(options(FinetuneConfig()))


def _format(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, tuple):
        value = list(value)
    return str(value)


def print_options(title: str, opts: list[Option]) -> None:
    print(title)
    print("(* = differs from the default; change a value in the YAML or with --set KEY=VALUE)")
    section = None
    for opt in opts:
        head = opt.key.rsplit(".", 1)[0] if "." in opt.key else ""
        if head != section:
            section = head
            print(f"\n[{section or 'run'}]")
        mark = "*" if opt.changed else " "
        default = f"   (default {_format(opt.default)})" if opt.changed else ""
        print(f"{mark} {opt.key} = {_format(opt.value)}{default}")
        print(f"      {opt.help or '(no help text)'}")


def run(args: argparse.Namespace) -> int:
    if args.finetune:
        opts, title = finetune_options(), "Fine-tuning options (mama finetune) with their defaults"
    else:
        opts = training_options(args.file, args.overrides)
        title = f"Training config {args.file or '(defaults)'}, resolved"
    if getattr(args, "json", False):
        print_json({"file": args.file, "kind": "finetune" if args.finetune else "train",
                    "options": [o.to_json() for o in opts]})
    else:
        print_options(title, opts)
    return 0
