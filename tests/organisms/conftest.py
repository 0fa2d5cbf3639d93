"""Fixtures of the organism tests (the micro run itself lives in tests/conftest.py: the CLI tests use it too)."""

import shutil

import pytest


@pytest.fixture
def copy_run_data(micro_run, tmp_path):
    """A fresh run directory that reuses the micro run's data (no checkpoint)."""
    out = tmp_path / "run"
    shutil.copytree(micro_run[0] / "data", out / "data")
    return out


@pytest.fixture(scope="module")
def model(request):
    """The shipped compiled organism named by the test module's NAME, as a HookedModel."""
    import torch

    import mechscope

    torch.set_num_threads(1)
    return mechscope.load(f"organism:{request.module.NAME}")


@pytest.fixture(scope="module")
def circuit(request):
    """The circuit.json of the shipped organism named by the test module's NAME."""
    from mechscope.organisms.compiled import load_circuit

    return load_circuit(request.module.NAME)
