"""Entry point of the standalone bundle (installer/mama-desktop.spec).

The bundle has one executable. It is the desktop app, and it is also the engine's CLI when
called the way the app starts its fine-tuning child process (`sys.executable -m
mama_core.cli finetune ...`, mama_desktop.engine.finetune_command) or as
`mama-desktop --cli ...`: a frozen executable cannot run `-m`, so the dispatch is here.
"""

from __future__ import annotations

import multiprocessing
import sys


def main(argv: list[str]) -> int:
    if argv[:2] == ["-m", "mama_core.cli"] or argv[:1] == ["--cli"]:
        from mama_core.cli import main as cli_main

        return cli_main(argv[2:] if argv[0] == "-m" else argv[1:])
    from mama_desktop.app import main as app_main

    return app_main(argv)


if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch DataLoader workers re-enter the executable
    sys.exit(main(sys.argv[1:]))
