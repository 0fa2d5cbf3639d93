"""ROME and MEMIT: the closed-form properties of the update, exact undo, and refusals that change nothing."""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from mechscope.errors import InputError
from mechscope.memory.covariance import key_covariance
from mechscope.memory.edit_metrics import edit_scores
from mechscope.memory.facts import Rewrite, counterfactuals
from mechscope.memory.memit import MemitConfig, memit
from mechscope.memory.prompts import Fact
from mechscope.memory.rome import RomeConfig, rome
from mechscope.memory.targets import ShiftConfig
from tests.helpers import gpt2_tokenizer, small_hf_model

FAST = ShiftConfig(n_prefixes=2, prefix_tokens=4, steps=4)


def _weights(model):
    return {n: p.detach().clone() for n, p in model.hf_model.named_parameters()}


def _same(model, before):
    return all(torch.equal(p, before[n]) for n, p in model.hf_model.named_parameters())


@pytest.fixture(scope="module")
def cov1(organism):
    return key_covariance(organism, 1, n_tokens=4096)


@pytest.fixture(scope="module")
def rewrites(organism):
    return counterfactuals(organism, 4)


def test_rome_update_is_rank_one_and_exact_on_k_star(organism, cov1, rewrites):
    before = _weights(organism)
    w_before = organism.W_out[1].double()
    edit = rome(organism, rewrites[0], 1, RomeConfig(shift=FAST), covariance=cov1)
    try:
        k_star, v_star, u = edit.details["k_star"], edit.details["v_star"], edit.details["u"]
        w_after = organism.W_out[1].double()
        torch.testing.assert_close(k_star @ w_after, v_star, rtol=1e-5, atol=1e-5 * float(v_star.norm()))
        delta = w_after - w_before
        assert int(torch.linalg.matrix_rank(delta, rtol=1e-5)) == 1
        # keys with kᵀ C⁻¹ k* = 0 are untouched: project random keys off u = C⁻¹ k*
        keys = torch.randn(16, organism.cfg.d_mlp, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
        generic = keys.clone()
        keys = keys - (keys @ u)[:, None] * u[None] / (u @ u)
        assert float((keys @ u).abs().max()) < 1e-12 * float(keys.norm(dim=1).max() * u.norm())
        d = edit.deltas[1].double()
        scale = float(torch.linalg.matrix_norm(d, ord=2)) * keys.norm(dim=1)
        assert float(((keys @ d).norm(dim=1) / scale).max()) < 1e-6          # ΔW k = 0 ...
        assert float(((generic @ d).norm(dim=1) / scale).min()) > 1e-3      # ... unlike a generic key
        assert edit.to_dict()["delta_ranks"] == {1: 1}
        assert not _same(organism, before)
    finally:
        edit.undo()
    assert _same(organism, before)              # bit for bit
    edit.undo()                                 # a second undo is a no-op
    assert _same(organism, before)


def test_rome_does_the_edit_with_default_effort(organism, cov1, rewrites):
    rw = rewrites[1]
    assert edit_scores(organism, [rw])["efficacy"] == 0.0
    edit = rome(organism, rw, 1, RomeConfig(shift=ShiftConfig(steps=25)), covariance=cov1)
    try:
        assert edit.details["target_prob_during_fit"] > 0.5
    finally:
        edit.undo()


def test_memit_writes_over_two_layers_and_undoes(organism, rewrites):
    before = _weights(organism)
    covs = key_covariance(organism, [1, 2], n_tokens=4096)
    edit = memit(organism, rewrites[:3], [2, 1], MemitConfig(shift=FAST, covariance_weight=10.0), covariances=covs)
    assert edit.layers == [1, 2] and set(edit.deltas) == {1, 2}
    assert not _same(organism, before)
    assert edit.to_dict()["requests"][0]["new"] == rewrites[0].new_target
    edit.undo()
    assert _same(organism, before)


@pytest.mark.parametrize("bad, match", [
    (Rewrite(Fact("The color of the blagri is", "zorvin", " gold"), " red"), "does not occur"),
    (Rewrite(Fact("The color of the blagri is", "blagri", " gold"), " goldenrod purple"), "tokens for this model"),
])
def test_bad_rewrites_change_nothing(organism, cov1, bad, match):
    before = _weights(organism)
    with pytest.raises(InputError, match=match):
        rome(organism, bad, 1, RomeConfig(shift=FAST), covariance=cov1)
    with pytest.raises(InputError, match=match):
        memit(organism, [bad], [1], MemitConfig(shift=FAST), covariances={1: cov1})
    assert _same(organism, before)


def test_contradictory_rewrites_are_refused_and_change_nothing(organism, cov1, rewrites):
    before = _weights(organism)
    rw = rewrites[0]
    other = Rewrite(rw.fact, rw.fact.target if rw.new_target != rw.fact.target else " red")
    with pytest.raises(InputError, match="one new target"):
        memit(organism, [rw, other], [1], MemitConfig(shift=FAST), covariances={1: cov1})
    assert _same(organism, before)


def test_layer_out_of_range_changes_nothing(organism, cov1, rewrites):
    before = _weights(organism)
    with pytest.raises(InputError, match="out of range"):
        rome(organism, rewrites[0], 7, RomeConfig(shift=FAST), covariance=cov1)
    with pytest.raises(InputError, match="out of range"):
        memit(organism, rewrites[:1], [1, 4], MemitConfig(shift=FAST))
    assert _same(organism, before)


def test_shared_down_projection_is_refused():
    hf = small_hf_model("gpt2", n_layers=2, vocab=50257)
    hf.transformer.h[1].mlp.c_proj.weight = hf.transformer.h[0].mlp.c_proj.weight   # layers share W_out
    model = HookedModel.from_hf(hf, gpt2_tokenizer(), spec="random:gpt2-shared")
    before = _weights(model)
    rw = Rewrite(Fact("The capital of France is", "France", " Paris"), " Rome")
    with pytest.raises(InputError, match="shares its storage"):
        rome(model, rw, 0, RomeConfig(shift=FAST))
    with pytest.raises(InputError, match="shares its storage"):
        memit(model, [rw], [0, 1], MemitConfig(shift=FAST))
    assert _same(model, before)


def test_save_writes_a_new_checkpoint_only(organism, cov1, rewrites, tmp_path):
    import mechscope

    edit = rome(organism, rewrites[2], 1, RomeConfig(shift=FAST), covariance=cov1)
    try:
        out = edit.save(tmp_path / "edited")
        with pytest.raises(InputError, match="not empty"):
            edit.save(out)
        reloaded = mechscope.load(str(out))
        assert torch.equal(reloaded.W_out[1], organism.W_out[1])
        assert (out / "edit.json").exists()
    finally:
        edit.undo()


def test_batch_neighbourhood_leaves_out_neighbours_that_are_rewritten(organism):
    from mechscope.memory.edit_metrics import edit_scores

    a, b = counterfactuals(organism, 2)
    a_with_b = Rewrite(Fact(a.fact.prompt, a.fact.subject, a.fact.target, neighbours=((b.fact.prompt, b.fact.target),)),
                       a.new_target)
    assert "neighbourhood" in edit_scores(organism, [a_with_b])
    assert "neighbourhood" not in edit_scores(organism, [a_with_b, b]) or \
        edit_scores(organism, [a_with_b, b])["neighbourhood"] == edit_scores(organism, [b])["neighbourhood"]


@pytest.mark.parametrize("arch", ["gpt2", "llama"])
def test_add_to_w_out_in_both_layouts(arch):
    """GPT-2's Conv1D stores [d_mlp d_model], LLaMA's nn.Linear [d_model d_mlp]: the view moves by delta."""
    model = HookedModel.from_hf(small_hf_model(arch, n_layers=2), gpt2_tokenizer(), spec=f"random:{arch}")
    before = model.W_out.clone()
    delta = torch.randn(model.cfg.d_mlp, model.cfg.d_model, generator=torch.Generator().manual_seed(0))
    model.add_to_W_out(1, delta)
    torch.testing.assert_close(model.W_out[1], before[1] + delta)
    assert torch.equal(model.W_out[0], before[0])
    tokens = torch.tensor([[1, 2, 3]])
    _, cache = model.run_with_cache(tokens, names=["blocks.1.mlp.hook_post", "blocks.1.hook_mlp_out"])
    expected = cache["blocks.1.mlp.hook_post"] @ model.W_out[1] + model.b_out[1]
    torch.testing.assert_close(cache["blocks.1.hook_mlp_out"], expected, rtol=1e-5, atol=1e-5)


def test_memit_writes_all_of_a_fact_that_a_later_layer_does_not_read():
    """compiled-memory plants each fact in one ReLU unit of layer 1 or 2; a layer-1 fact whose layer-2 key
    is zero cannot be written at layer 2, so MEMIT over [1, 2] must put its whole residual into layer 1:
    afterwards the residual after layer 2 is z (up to the small λC term), not halfway there."""
    import mechscope
    from mechscope.memory.facts import planted_facts
    from mechscope.memory.targets import state_at_subject, subject_keys

    model = mechscope.load("organism:compiled-memory")
    layer_of = {f["prompt"]: f["layer"] for f in planted_facts(model)}
    rw = next(r for r in counterfactuals(model, 30) if layer_of[r.fact.prompt] == 1
              and float(subject_keys(model, 2, [r.fact], [""], "last").norm()) == 0.0)
    covs = key_covariance(model, [1, 2], n_tokens=2048, seq_len=32)
    shift = ShiftConfig(n_prefixes=0, position="last")
    before = state_at_subject(model, "blocks.2.hook_resid_post", [rw.fact], "last")[0]
    edit = memit(model, [rw], [1, 2], MemitConfig(shift=shift, covariance_weight=1e-6, damping=1e-3),
                 covariances=covs)
    try:
        after = state_at_subject(model, "blocks.2.hook_resid_post", [rw.fact], "last")[0]
        z = edit.details["z"][0]
        assert edit.details["layers_reading"] == [1.0]
        assert float((after - z).norm()) < 1e-3 * float((z - before).norm())
        assert edit_scores(model, [rw])["efficacy"] == 1.0
    finally:
        edit.undo()
