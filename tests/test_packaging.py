"""pyproject's package-data globs ship every data file of the package and match nothing that is not there."""

from __future__ import annotations

from pathlib import Path

import pytest

import mechscope

tomllib = pytest.importorskip("tomllib")      # Python 3.11+

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(mechscope.__file__).parent


def test_package_data_globs_cover_the_data_files_and_each_matches_one():
    globs = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["mechscope"]
    matched = {g: {p for p in PACKAGE.glob(g) if p.is_file()} for g in globs}
    assert all(matched.values()), f"globs that match no file: {[g for g, m in matched.items() if not m]}"
    data_files = {p for p in PACKAGE.rglob("*") if p.is_file() and p.suffix not in (".py", ".pyc")
                  and "__pycache__" not in p.parts}
    unshipped = data_files - set().union(*matched.values())
    assert not unshipped, f"data files no glob ships: {sorted(str(p.relative_to(PACKAGE)) for p in unshipped)}"
