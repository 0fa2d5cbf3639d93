"""The one table of head / position axes, and the hook system's checks on what hooks return."""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from mechscope.errors import BatchGrowthError, HookShapeError, InterventionError
from mechscope.model.axes import AXES, axes_of, where, write
from mechscope.model.hook_points import GrowBatch
from mechscope.model.interventions import mean_ablate, patch_from, zero_ablate
from mechscope.model.names import parse
from tests.helpers import ARCHES, small_hf_model

TEXT = "When Mary and John went to the store, John gave a drink to"


@pytest.fixture(scope="module", params=ARCHES)
def model(request, tokenizer):
    return HookedModel.from_hf(small_hf_model(request.param, seed=1), tokenizer)


def test_every_hook_point_has_axes(model):
    assert {parse(n).site for n in model.hook_names()} <= set(AXES)


def test_axes_match_the_cached_shapes(model):
    """The head axis has n_heads (n_kv_heads for k, v) entries and the position axis n_pos, at every point."""
    tokens = model.to_tokens(TEXT)
    _, cache = model.run_with_cache(tokens, names=lambda n: True)
    for name, act in cache.items():
        axes = axes_of(name)
        assert act.shape[axes.position] == tokens.shape[1], name
        if axes.head is not None:
            site = parse(name).site
            heads = model.cfg.n_kv_heads if site in ("attn.hook_k", "attn.hook_v", "hook_k_input", "hook_v_input") else model.cfg.n_heads
            assert act.shape[axes.head] == heads, name


def test_where_selects_a_grid_of_heads_and_positions():
    act = torch.arange(2 * 5 * 4 * 3).reshape(2, 5, 4, 3)             # [batch pos head d]
    picked = act[where("blocks.0.attn.hook_z", 4, heads=[1, 3], positions=[0, 2, 4])]
    assert picked.shape == (2, 3, 2, 3)
    assert torch.equal(picked, act[:, [0, 2, 4]][:, :, [1, 3]])
    pattern = torch.arange(2 * 4 * 5 * 5).reshape(2, 4, 5, 5)          # [batch head q k]
    assert torch.equal(pattern[where("blocks.0.attn.hook_pattern", 4, heads=2, positions=[1, 4])],
                       pattern[:, 2, [1, 4]])
    target = torch.zeros(6, 5, 4, 3)
    write(target, torch.ones(2, 5, 4, 3), "blocks.0.attn.hook_z", heads=1, rows=slice(2, 4))
    assert target.sum() == 2 * 5 * 3 and target[2:4, :, 1].eq(1).all()


def test_heads_on_a_point_without_heads_is_an_error():
    with pytest.raises(InterventionError, match="no head axis"):
        where("blocks.0.hook_resid_pre", 3, heads=[0])
    with pytest.raises(InterventionError, match="add its site to AXES"):
        where("blocks.0.hook_unknown", 3, positions=[0])


def test_mean_ablation_and_patching_by_hand(model):
    """The helpers against direct indexing: head 1 at positions 2 and 4 of hook_z, and a pattern head."""
    tokens = model.to_tokens(TEXT)
    name, pat = "blocks.1.attn.hook_z", "blocks.0.attn.hook_pattern"
    _, clean = model.run_with_cache(tokens, names=[name, pat])
    other = model.to_tokens("The cat sat on the mat and then the dog came in and barked at")[:, :tokens.shape[1]]
    _, corrupt = model.run_with_cache(other, names=[name, pat])
    mean = torch.randn(clean[name].shape[1:], generator=torch.Generator().manual_seed(0))
    seen = {}

    def grab(act, hook):
        seen[hook.name] = act

    with torch.no_grad():
        model.run_with_hooks(tokens, fwd={name: [mean_ablate(mean, heads=1, positions=[2, 4]), grab]})
        model.run_with_hooks(tokens, fwd={pat: [patch_from(corrupt, heads=[0, 2]), grab]})
    expected = clean[name].clone()
    expected[:, 2, 1], expected[:, 4, 1] = mean[2, 1], mean[4, 1]
    torch.testing.assert_close(seen[name], expected)
    expected_pattern = clean[pat].clone()
    expected_pattern[:, [0, 2]] = corrupt[pat][:, [0, 2]]
    torch.testing.assert_close(seen[pat], expected_pattern)


def test_wrong_dtype_names_the_hook(model):
    with pytest.raises(HookShapeError, match=r"blocks\.0\.hook_mlp_out returned a torch.float64"):
        model.run_with_hooks(model.to_tokens(TEXT), fwd={"blocks.0.hook_mlp_out": lambda a, h: a.double()})


def test_grow_batch_equals_repeating_the_input(model):
    """Rows appended at block 1's input (then zero-ablated there) equal the same rows run from the input."""
    tokens = model.to_tokens(TEXT)
    name = "blocks.1.hook_resid_pre"

    def grow(act, hook):
        return torch.cat([act, zero_ablate(positions=3)(act, hook)])

    with torch.no_grad():
        grown = model.run_with_hooks(tokens, fwd={name: GrowBatch(grow)})
        plain = model(tokens)
        ablated = model.run_with_hooks(tokens, fwd={name: zero_ablate(positions=3)})
    torch.testing.assert_close(grown, torch.cat([plain, ablated]), atol=1e-5, rtol=0)


def test_grow_batch_refuses_per_row_block_inputs(model):
    """With a padding mask the block receives per-row tensors: adding rows there must fail loudly."""
    batch = model.tokenize(["a b c d e", "a b"])
    name = "blocks.1.hook_resid_pre"
    with pytest.raises(BatchGrowthError, match="per-row tensor"):
        model.run_with_hooks(batch.tokens, attention_mask=batch.attention_mask,
                             fwd={name: GrowBatch(lambda a, h: torch.cat([a, a]))})
    with pytest.raises(InterventionError, match="hook_resid_pre"):
        model.run_with_hooks(batch.tokens, fwd={"blocks.1.hook_mlp_out": GrowBatch(lambda a, h: a)})


def test_units_select_mlp_neurons(model):
    """mean_ablate(units=...) at mlp.hook_post replaces just those neurons (at the chosen positions)."""
    tokens = model.to_tokens(TEXT)
    name = "blocks.0.mlp.hook_post"
    _, clean = model.run_with_cache(tokens, names=[name])
    mean = torch.randn(model.cfg.d_mlp, generator=torch.Generator().manual_seed(0))
    seen = {}
    with torch.no_grad():
        model.run_with_hooks(tokens, fwd={name: [mean_ablate(mean, positions=[1, 3], units=[3, 17]),
                                                 lambda a, h: seen.setdefault("post", a)]})
    expected = clean[name].clone()
    for p in (1, 3):
        expected[:, p, [3, 17]] = mean[[3, 17]]
    torch.testing.assert_close(seen["post"], expected)
    assert where(name, 3, units=5) == (slice(None), slice(None), 5)


def test_row_positions_pair_rows_with_positions():
    from mechscope.model.axes import RowPositions

    act = torch.arange(3 * 5 * 4).reshape(3, 5, 4)                     # [batch pos d]
    picked = act[where("blocks.0.hook_resid_post", 3, positions=RowPositions([2, 0, 4], rows=[0, 1, 1]))]
    assert torch.equal(picked, torch.stack([act[0, 2], act[1, 0], act[1, 4]]))
    every_row = act[where("blocks.0.hook_mlp_out", 3, positions=RowPositions([1, 3, 0]), n_rows=3)]
    assert torch.equal(every_row, torch.stack([act[0, 1], act[1, 3], act[2, 0]]))
    z = torch.arange(2 * 5 * 4 * 3).reshape(2, 5, 4, 3)                 # [batch pos head d]: heads form a grid
    picked = z[where("blocks.0.attn.hook_z", 4, heads=[1, 3], positions=RowPositions([4, 2], rows=[1, 0]))]
    assert torch.equal(picked, torch.stack([z[1, 4][[1, 3]], z[0, 2][[1, 3]]]))
    pattern = torch.arange(2 * 4 * 5 * 5).reshape(2, 4, 5, 5)            # [batch head q k]: the query pairs with the row
    assert torch.equal(pattern[where("blocks.0.attn.hook_pattern", 4, heads=2, positions=RowPositions([3, 1]))],
                       torch.stack([pattern[0, 2, 3], pattern[1, 2, 1]]))
    with pytest.raises(InterventionError, match="element-wise"):
        where("blocks.0.hook_resid_post", 3, positions=RowPositions([1, 2], rows=[0]))
    with pytest.raises(InterventionError, match="one position per batch row"):
        where("blocks.0.hook_resid_post", 3, positions=RowPositions([1, 2]), n_rows=3)


def test_per_row_patches_and_shifts_in_one_batch_equal_one_run_each(model):
    """patch_from / add_vector with RowPositions on a 3-row batch give, row by row, the logits of three
    separate runs that each patch (or shift) their own position."""
    from mechscope.model.axes import RowPositions
    from mechscope.model.interventions import add_vector

    clean = model.to_tokens(TEXT)
    other = clean.clone()
    other[0, 1:4] = other[0, 5:8]
    name = "blocks.0.hook_resid_pre"  # before a global layer: GPT-Neo's local layer 1 (window 4) does not reach the end
    _, cache = model.run_with_cache(clean, names=[name])
    positions = [2, 5, 3]
    batch = other.expand(3, -1)
    source = {name: cache[name].expand(3, -1, -1)}
    with model.hooks(fwd={name: patch_from(source, positions=RowPositions(positions))}):
        together = model(batch)
    for row, pos in enumerate(positions):
        with model.hooks(fwd={name: patch_from(cache, positions=pos)}):
            alone = model(other)
        torch.testing.assert_close(together[row], alone[0], rtol=1e-5, atol=1e-5)
    shifts = torch.randn(3, model.cfg.d_model, generator=torch.Generator().manual_seed(0), requires_grad=True)
    with model.hooks(fwd={name: add_vector(shifts, positions=RowPositions(positions))}):
        shifted = model(batch)
    shifted[:, -1].logsumexp(-1).sum().backward()
    assert shifts.grad is not None and bool(shifts.grad.abs().sum(1).gt(0).all())
    for row, pos in enumerate(positions):
        with model.hooks(fwd={name: add_vector(shifts[row].detach(), positions=pos)}):
            alone = model(other)
        torch.testing.assert_close(shifted[row].detach(), alone[0], rtol=1e-5, atol=1e-5)
