"""The pieces that make claims scale with the model, each checked against the unscaled computation:
layer choice, lens points, sampled-vocabulary logits, narrowed patching grids, screened head patching,
layer-robustness subsets and grouped norm calibration."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from mechscope.claims.base import Budget
from mechscope.data.text import eval_token_batches


@pytest.fixture(scope="module")
def organism():
    """The 4-block tiny-gpt2 organism: deep enough to narrow, trained so effects are not noise."""
    import mechscope

    return mechscope.load("organism:tiny-gpt2", device="cpu")


def test_budget_layers_spread_over_depth_with_both_ends():
    quick = Budget.named("quick")
    assert quick.layers(4) == [0, 1, 2, 3]
    picked = quick.layers(30)
    assert len(picked) == 8 and picked[0] == 0 and picked[-1] == 29 and picked == sorted(set(picked))
    assert max(b - a for a, b in zip(picked, picked[1:], strict=False)) <= 5
    assert Budget.named("full").layers(30) == list(range(30))
    assert quick.exact_heads(4, 4) is None and quick.exact_heads(30, 9) == 72
    assert Budget.named("full").exact_heads(30, 9) is None


def test_lens_points_equal_the_full_lens_at_those_points(organism):
    from mechscope.lens.logit_lens import run_lens

    tokens = list(eval_token_batches(organism, seq_len=16, n_sequences=4, batch_size=4))
    full = run_lens(organism, tokens)
    part = run_lens(organism, tokens, points=[0, 2, 4])
    assert part.layer_labels == [full.layer_labels[i] for i in (0, 2, 4)]
    for key in ("kl_to_final", "ce", "top1_agreement"):
        assert getattr(part, key) == pytest.approx([getattr(full, key)[i] for i in (0, 2, 4)], abs=1e-6)


def test_sampled_vocab_logits_are_the_models_columns_and_keep_the_top_tokens(organism):
    from mechscope.lens.sampled_vocab import sample_vocab, top_tokens, unembed_columns

    m = organism
    x = m.ln_final(torch.randn(5, m.cfg.d_model))
    vocab = torch.tensor([3, 17, 400, m.cfg.d_vocab - 1])
    assert torch.allclose(unembed_columns(m, x, vocab), m.unembed(x)[:, vocab], atol=1e-5)
    resid = torch.randn(7, m.cfg.d_model)
    top = top_tokens(m, resid, k=4, chunk=3)
    assert torch.equal(top, m.unembed(m.ln_final(resid)).topk(4, dim=-1).indices)
    sample = sample_vocab(top, 64, m.cfg.d_vocab, torch.Generator().manual_seed(0))
    assert len(sample) == 64 and len(set(sample.tolist())) == 64
    assert set(top.flatten().tolist()) <= set(sample.tolist())
    assert torch.equal(sample_vocab(top, 10**6, m.cfg.d_vocab, torch.Generator()), torch.arange(m.cfg.d_vocab))


def test_narrowed_patching_grid_equals_the_full_grid_there(organism):
    from mechscope.patching.activation import PatchingConfig, activation_patching
    from mechscope.tasks.induction import induction_task

    task = induction_task(organism, n_prompts=4, half_len=5, seed=0)
    full = activation_patching(organism, task, "resid_pre")
    part = activation_patching(organism, task, "resid_pre", PatchingConfig(layers=[1, 3], positions=[2, -1]))
    end = task.n_pos - 1
    assert part.values.shape == (2, 2) and part.layers == [1, 3]
    assert torch.allclose(part.values, full.values[[1, 3]][:, [2, end]], atol=1e-5)


def test_screened_head_patching_is_exact_on_the_heads_it_confirms(organism):
    from mechscope.patching.activation import PatchingConfig, activation_patching
    from mechscope.patching.screened import head_effects
    from mechscope.tasks.induction import induction_task

    task = induction_task(organism, n_prompts=4, half_len=5, seed=0)
    full = activation_patching(organism, task, "z", PatchingConfig(direction="noise"))
    everything = head_effects(organism, task, "noise", exact_top=None)
    assert torch.allclose(everything.result.values, full.values) and bool(everything.exact.all())
    screen = head_effects(organism, task, "noise", exact_top=5)
    assert screen.n_exact == 5
    assert torch.allclose(screen.result.values[screen.exact], full.values[screen.exact], atol=1e-5)
    # the screen finds the head with the largest exact effect (induction heads dominate this task)
    assert screen.exact.reshape(-1)[full.values.reshape(-1).abs().argmax()]


def test_layer_robustness_subset_equals_the_full_sweep_there(organism):
    from mechscope.geometry.layer_robustness import layer_robustness

    tokens = list(eval_token_batches(organism, seq_len=16, n_sequences=4, batch_size=4))
    full = layer_robustness(organism, tokens)
    part = layer_robustness(organism, tokens, layers=[0, 3])
    assert part.layers == [0, 3] and part.swapped_layers == [0]
    assert part.deleted_agreement == pytest.approx([full.deleted_agreement[i] for i in (0, 3)])
    assert part.swapped_ce == pytest.approx([full.swapped_ce[0]])


def test_grouped_calibration_measures_each_norm_like_one_at_a_time(organism):
    from mechscope.lens.frozen_norms import calibrate, calibrate_many
    from mechscope.lens.norm_removal import freezing_groups, removal_order

    m = organism
    batches = list(eval_token_batches(m, seq_len=16, n_sequences=4, batch_size=4))
    sites = removal_order(m)[:3]
    together = calibrate_many(m, sites, batches)
    for site in sites:
        alone = calibrate(m, site, batches)
        assert together[site].scale == pytest.approx(alone.scale, rel=1e-6)
        assert together[site].first_scale == pytest.approx(alone.first_scale, rel=1e-6)
    order = removal_order(m)
    groups = freezing_groups(order, 4)
    assert len(groups) == 4 and [s for g in groups for s in g] == order
    assert freezing_groups(order, None) == [[s] for s in order]


def test_quick_budget_is_unchanged_on_models_no_deeper_than_max_layers():
    """The organisms (<= 4 blocks) see exactly the pre-scaling experiments under quick."""
    quick = Budget.named("quick")
    assert dataclasses.replace(quick, max_layers=None).layers(4) == quick.layers(4)
