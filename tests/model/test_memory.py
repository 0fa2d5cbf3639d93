"""The allocator setting that keeps freed memory for reuse: applied once, opt-out by env var."""

import pytest

from mechscope.model import memory


@pytest.fixture
def fresh(monkeypatch):
    monkeypatch.setattr(memory, "_applied", None)
    return memory


def test_opt_out_leaves_the_allocator_alone(fresh, monkeypatch):
    monkeypatch.setenv(memory.ENV, "0")
    calls = []
    monkeypatch.setattr(memory, "_glibc", lambda: calls.append(1))
    assert fresh.keep_freed_memory() is False
    assert calls == []


def test_applied_once_on_glibc(fresh, monkeypatch):
    if memory._glibc() is None:
        pytest.skip("not glibc")
    monkeypatch.delenv(memory.ENV, raising=False)
    assert fresh.keep_freed_memory() is True
    monkeypatch.setattr(memory, "_glibc", lambda: pytest.fail("applied twice"))
    assert fresh.keep_freed_memory() is True


def test_run_with_cache_applies_it(fresh, monkeypatch, tiny_gpt2_model):
    seen = []
    monkeypatch.setattr("mechscope.model.hooked.keep_freed_memory", lambda: seen.append(1))
    tiny_gpt2_model.run_with_cache("hello there", names=["blocks.0.hook_resid_post"])
    assert seen == [1]
