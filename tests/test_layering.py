"""The import graph of src/mechscope keeps its layers: analyses never import presentation or claims,
geometry takes no helpers from the lens, and the model core never imports organisms. Every import
counts, including those inside functions."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import mechscope

PACKAGE = Path(mechscope.__file__).parent
ANALYSES = ("lens", "geometry", "attention", "patching", "dictionary", "toy", "tasks", "data", "circuits", "memory", "graphs")
FORBIDDEN = {**dict.fromkeys(ANALYSES, ("report", "cli", "claims")), "model": ("organisms", "report", "cli", "claims"),
             "geometry": ("report", "cli", "claims", "lens")}   # shared helpers live in model/ or data/


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import statement in the file, relative ones resolved."""
    package = ".".join(("mechscope", *path.relative_to(PACKAGE).parent.parts))
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(p for p in (base, node.module or "") if p)
            found.append((node.lineno, module))
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def violations() -> list[str]:
    out = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE).parts
        banned = FORBIDDEN.get(parts[0], ()) if len(parts) > 1 else ()
        for line, module in imports_of(path):
            target = module.split(".")
            if len(target) > 1 and target[0] == "mechscope" and target[1] in banned:
                out.add(f"{path.relative_to(PACKAGE).as_posix()}:{line} imports mechscope.{target[1]}")
    return sorted(out)


def test_layers_are_kept():
    assert violations() == []


def test_the_check_sees_lazy_and_relative_imports(tmp_path, monkeypatch):
    """A planted violation inside a function, and a relative one, are both found."""
    fake = tmp_path / "mechscope"
    (fake / "lens").mkdir(parents=True)
    (fake / "model").mkdir()
    (fake / "lens" / "bad.py").write_text("def f():\n    from mechscope.report import render\n")
    (fake / "model" / "bad.py").write_text("from ..organisms import shipped_path\n")
    (fake / "lens" / "fine.py").write_text("from mechscope.model import axes\nimport mechscope.figures\n")
    (fake / "geometry").mkdir()
    (fake / "geometry" / "bad.py").write_text("from mechscope import claims\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert violations() == ["geometry/bad.py:1 imports mechscope.claims", "lens/bad.py:2 imports mechscope.report",
                            "model/bad.py:1 imports mechscope.organisms"]
