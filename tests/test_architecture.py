"""The engine stays a library free of Qt (docs/method.md §8.1)."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = ("PySide6", "pyqtgraph", "mama_desktop", "shiboken6")


def test_importing_mama_core_loads_no_qt():
    code = (
        "import sys, importlib, pkgutil, mama_core\n"
        "for m in pkgutil.walk_packages(mama_core.__path__, 'mama_core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r}]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"mama_core pulled in: {out.stdout}"


def test_no_source_file_in_mama_core_imports_qt():
    offenders = []
    for path in (ROOT / "mama_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []


def test_no_unsafe_torch_load_in_engine():
    """A checkpoint must never execute code when loaded (docs/method.md §1.11)."""
    offenders = []
    for path in (ROOT / "mama_core").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "load" \
                    and getattr(node.func.value, "id", None) == "torch":
                kw = {k.arg: k.value for k in node.keywords}
                if not (isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True):
                    offenders.append(f"{path}:{node.lineno}")
    assert offenders == []


def test_the_predictor_and_trainer_load_no_scikit_learn():
    # The GPU suite runs where only torch/transformers/peft are installed (docs/benchmarks.md).
    code = ("import sys, mama_core.inference, mama_core.training.trainer\n"
            "print('sklearn' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
