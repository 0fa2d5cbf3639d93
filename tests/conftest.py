"""Shared fixtures: small random-init models of every adapted architecture, the real stories260K, a headless
browser, and a trained micro organism run (used by the organism and the CLI tests)."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import STORIES260K, gpt2_tokenizer, small_hf_model


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread in every test, restored afterwards: on a shared, loaded 2-core machine
    two OpenMP threads spin-wait and ran up to 40x slower (30 tuned-lens steps: 0.7 s vs 30 s)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tokenizer():
    return gpt2_tokenizer()


@pytest.fixture(scope="session")
def tiny_gpt2_model():
    """A 2-layer, d_model 64 GPT-2 with random weights and the real GPT-2 tokenizer."""
    from mechscope import HookedModel

    return HookedModel.from_hf(small_hf_model("gpt2"), gpt2_tokenizer(), spec="random:gpt2")


@pytest.fixture(scope="session")
def stories260k():
    import mechscope

    if not STORIES260K.exists():
        pytest.skip(f"stories260K not found at {STORIES260K}")
    return mechscope.load(str(STORIES260K), device="cpu")


@pytest.fixture(scope="session")
def browser():
    """Headless Debian chromium driven by Playwright (skips without one); pages come from OfflinePage."""
    from tests.helpers import CHROMIUM_ARGS, browser_missing, find_chromium

    why = browser_missing()
    if why:
        pytest.skip(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=find_chromium(), args=CHROMIUM_ARGS)
        yield b
        b.close()


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
