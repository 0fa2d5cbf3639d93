"""Activation patching: exactness against one run per site, and the no-op check."""

from __future__ import annotations

import pytest
import torch

from mechscope.patching.activation import PatchingConfig, activation_patching, grid_sites, runs_for
from mechscope.patching.partial_forward import PartialForwardConfig, Site, run_patched
from mechscope.tasks import ioi_task


def naive_scores(model, task, sites, direction="denoise"):
    """One full forward per site with a single hook: the reference implementation."""
    base, source = runs_for(task, direction)
    names = sorted({s.hook for s in sites})
    with torch.no_grad():
        clean = model(task.clean_tokens)[:, -1]
        _, cache = model.run_with_cache(source, names=names)
    out = []
    for s in sites:
        ix = s.index()

        def hook(act, _h, s=s, ix=ix):
            act = act.clone()
            act[(slice(None), *ix)] = cache[s.hook][(slice(None), *ix)]
            return act

        with torch.no_grad():
            logits = model.run_with_hooks(base, fwd={s.hook: hook})[:, -1]
        out.append(task.score(logits, reference_logits=clean))
    return torch.stack(out)


@pytest.fixture(scope="module")
def task(tiny_gpt2_model):
    return ioi_task(tiny_gpt2_model, n_prompts=3, template_ids=[0])


@pytest.mark.parametrize("site,per_position", [("resid_pre", False), ("attn_out", False), ("mlp_out", False),
                                               ("z", False), ("pattern", True), ("v", False)])
def test_vectorized_equals_naive(tiny_gpt2_model, task, site, per_position):
    """Both modes (grow the batch at the patched layer / expand the input) against the loop."""
    model = tiny_gpt2_model
    sites, shape = grid_sites(model, site, task.n_pos, per_position)
    if len(sites) > 20:
        sites = sites[:: len(sites) // 20]
    base, source = runs_for(task, "denoise")
    with torch.no_grad():
        clean = model(task.clean_tokens)[:, -1]
        _, cache = model.run_with_cache(source, names=sorted({s.hook for s in sites}))

    def score(logits, idx):
        return task.score(logits, idx, reference_logits=clean)

    ref = naive_scores(model, task, sites)
    assert ref.std() > 0  # the grid is not trivially constant
    for skip in (True, False):
        fast, _ = run_patched(model, base, {s.hook: cache[s.hook] for s in sites}, sites, score,
                              config=PartialForwardConfig(skip_lower_layers=skip, max_rows=20))
        torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-5)


def test_patching_clean_into_clean_changes_nothing(tiny_gpt2_model, task):
    same = task.subset(slice(None))
    same.corrupt_tokens = same.clean_tokens.clone()
    for site in ("resid_pre", "attn_out", "z"):
        sites, _ = grid_sites(tiny_gpt2_model, site, same.n_pos)
        with torch.no_grad():
            clean = tiny_gpt2_model(same.clean_tokens)[:, -1]
            _, cache = tiny_gpt2_model.run_with_cache(same.clean_tokens, names=sorted({s.hook for s in sites}))
        scores, base = run_patched(tiny_gpt2_model, same.clean_tokens, {s.hook: cache[s.hook] for s in sites},
                                   sites, lambda lg, i: same.score(lg, i))
        expected = same.score(clean)
        torch.testing.assert_close(scores, expected.expand_as(scores), atol=1e-5, rtol=0)
        torch.testing.assert_close(base, expected, atol=1e-5, rtol=0)


def test_grid_normalisation_endpoints(tiny_gpt2_model, task):
    """Patching the whole residual at layer 0 every position at once = the clean run."""
    model = tiny_gpt2_model
    res = activation_patching(model, task, "resid_pre")
    assert res.values.shape == (model.cfg.n_layers, task.n_pos)
    # positions where clean and corrupt tokens agree carry nothing at layer 0
    same = ~task.differing_positions()
    assert torch.allclose(res.values[0, same], torch.zeros(int(same.sum())), atol=1e-4)
    noise = activation_patching(model, task, "resid_pre", PatchingConfig(direction="noise"))
    assert noise.values.shape == res.values.shape


def test_full_prompt_patch_recovers_clean(tiny_gpt2_model, task):
    """One site covering every position of resid_pre 0 restores the clean metric exactly (value 1)."""
    res = activation_patching(tiny_gpt2_model, task, sites=[Site("blocks.0.hook_resid_pre")])
    assert res.values.shape == (1,)
    assert abs(float(res.values[0]) - 1.0) < 1e-4


@pytest.mark.parametrize("site", ["resid_pre", "k", "z"])
def test_vectorized_equals_naive_on_llama_gqa(site):
    """Rotary positions and grouped-query attention (k sites index kv heads)."""
    from mechscope import HookedModel
    from mechscope.tasks import induction_task
    from tests.helpers import gpt2_tokenizer, small_hf_model

    model = HookedModel.from_hf(small_hf_model("llama"), gpt2_tokenizer(), spec="random:llama")
    task = induction_task(model, n_prompts=2, half_len=5)
    sites, _ = grid_sites(model, site, task.n_pos)
    if site == "k":
        assert len(sites) == model.cfg.n_layers * model.cfg.n_kv_heads
    base, source = runs_for(task, "denoise")
    with torch.no_grad():
        _, cache = model.run_with_cache(source, names=sorted({s.hook for s in sites}))
    fast, _ = run_patched(model, base, {s.hook: cache[s.hook] for s in sites}, sites, lambda lg, i: task.score(lg, i))
    ref = naive_scores(model, task, sites)
    torch.testing.assert_close(fast, ref, atol=2e-5, rtol=1e-5)
