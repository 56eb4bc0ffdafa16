"""mama_desktop talks to the engine only through its public names (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import mama_desktop

PUBLIC_ENGINE_MODULES = {
    "mama_core", "mama_core.errors", "mama_core.paths", "mama_core.dicom", "mama_core.inference",
    "mama_core.search", "mama_core.synthetic", "mama_core.captions", "mama_core.registry",
    "mama_core.logging_setup", "mama_core.datasets", "mama_core.pacs", "mama_core.reports", "mama_core.finetune",
}


def _engine_imports() -> list[tuple[str, str, str]]:
    found = []
    for path in Path(mama_desktop.__file__).parent.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mama_core"):
                found += [(path.name, node.module, a.name) for a in node.names]
            elif isinstance(node, ast.Import):
                found += [(path.name, a.name, "") for a in node.names if a.name.startswith("mama_core")]
    return found


def test_only_public_engine_names_are_imported() -> None:
    imports = _engine_imports()
    assert imports, "the desktop does use the engine"
    for file, module, name in imports:
        assert module in PUBLIC_ENGINE_MODULES, f"{file}: imports {module}"
        assert not name.startswith("_"), f"{file}: imports private {module}.{name}"


def test_engine_imports_are_confined_to_the_facade() -> None:
    users = {file for file, module, _ in _engine_imports() if module not in ("mama_core", "mama_core.errors",
                                                                              "mama_core.paths")}
    assert users == {"engine.py"}
