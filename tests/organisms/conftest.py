"""Fixtures of the organism tests (the micro run itself lives in tests/conftest.py: the CLI tests use it too)."""

import shutil

import pytest


@pytest.fixture
def copy_run_data(micro_run, tmp_path):
    """A fresh run directory that reuses the micro run's data (no checkpoint)."""
    out = tmp_path / "run"
    shutil.copytree(micro_run[0] / "data", out / "data")
    return out
