"""Shared fixtures: small random-init models of every adapted architecture, and the real stories260K."""

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
