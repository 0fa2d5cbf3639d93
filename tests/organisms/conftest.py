import shutil

import pytest

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife. However little known the feelings or views of such a man may be "
        "on his first entering a neighbourhood, this truth is so well fixed in the minds of the "
        "surrounding families.\n") * 40


@pytest.fixture(scope="session")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "austen.txt"
    path.write_text(TEXT, encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def micro_run(tmp_path_factory, text_file):
    """A finished micro-test run directory (trained straight through)."""
    import torch

    from mechscope.organisms.presets import get_preset
    from mechscope.organisms.train import train

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("runs") / "straight"
    final = train(get_preset("micro-test"), out, [str(text_file)], show_progress=False)
    return out, final


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
