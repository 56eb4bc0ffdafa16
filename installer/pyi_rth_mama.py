"""PyInstaller runtime hook: runs before the app's code inside the bundle.

resources/ (configs, caption templates, demo model, icons) lie in the bundle's data folder
(sys._MEIPASS); mama_core.paths.resources_dir() honours MAMA_RESOURCES. A MAMA_RESOURCES
the user already set wins. Nothing may download weights or data at run time (docs/method.md §7)."""

import os
import sys

_base = getattr(sys, "_MEIPASS", os.path.dirname(sys.executable))
os.environ.setdefault("MAMA_RESOURCES", os.path.join(_base, "resources"))
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_name, "1")
