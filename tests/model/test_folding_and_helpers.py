"""Reversible weight transforms and the ready-made intervention helpers."""

from __future__ import annotations

import pytest
import torch

from mechscope import HookedModel
from mechscope.errors import InputError
from mechscope.model.interventions import add_vector, mean_ablate, patch_from, resample_ablate, zero_ablate
from tests.helpers import small_hf_model

TEXT = "The cat sat on the mat because it was warm"


@pytest.fixture(params=["gpt2", "neox", "llama", "gemma", "gpt_neo", "opt", "phi", "gptj", "phi3", "stablelm",
                        "gemma2"])
def model(request, tokenizer):
    m = HookedModel.from_hf(small_hf_model(request.param, seed=3), tokenizer)
    with torch.no_grad():  # non-trivial norm weights, so folding has something to do
        g = torch.Generator().manual_seed(0)
        for b in m.structure.blocks + [m.structure]:
            for norm in ((b.ln1, b.ln2) if hasattr(b, "ln1") else (b.final_norm,)):
                norm.weight.add_(0.3 * torch.randn(norm.weight.shape, generator=g))
                if getattr(norm, "bias", None) is not None:
                    norm.bias.add_(0.3 * torch.randn(norm.bias.shape, generator=g))
    return m


def test_fold_layer_norm_keeps_function_and_undoes(model):
    tokens = model.to_tokens(TEXT)
    with torch.no_grad():
        ref = model(tokens)
    w_q, ln_w = model.W_Q.clone(), model.structure.blocks[0].ln1.weight.detach().clone()
    with model.fold_layer_norm() as report:
        assert report.max_logprob_change < 1e-4
        with torch.no_grad():
            torch.testing.assert_close(model(tokens), ref, atol=1e-4, rtol=1e-4)
        assert not torch.allclose(model.W_Q, w_q)
        expected_ln = 1.0 - model.table.norm_weight_offset
        assert torch.all(model.structure.blocks[0].ln1.weight == expected_ln)
    assert torch.equal(model.W_Q, w_q) and torch.equal(model.structure.blocks[0].ln1.weight, ln_w)
    with torch.no_grad():
        assert torch.equal(model(tokens), ref)


def test_center_unembed_keeps_logprobs(model):
    tokens = model.to_tokens(TEXT)
    with model.center_unembed() as report:
        assert report.max_logprob_change < 1e-4
        assert model.W_U.mean(-1).abs().max() < 1e-6
    tied = model.cfg.tied_embeddings
    assert (model.structure.unembed.weight is model.structure.embed.weight) == tied
    assert tokens is not None


def test_center_writing_weights(model):
    if model.cfg.norm != "layernorm":
        with pytest.raises(InputError, match="needs LayerNorm"):
            model.center_writing_weights()
        return
    with model.center_writing_weights() as report:
        assert report.max_logprob_change < 1e-4
        assert model.W_O.mean(-1).abs().max() < 1e-6
        assert model.W_E.mean(-1).abs().max() < 1e-6


def test_intervention_helpers(tokenizer):
    model = HookedModel.from_hf(small_hf_model("gpt2", seed=4), tokenizer)
    clean = model.to_tokens("When Mary and John went to the store, John gave a drink to")
    corrupt = model.to_tokens("When Mary and John went to the store, Mary gave a drink to")
    name = "blocks.1.attn.hook_z"
    _, c_clean = model.run_with_cache(clean, names=[name, "blocks.0.hook_resid_post"])
    _, c_corrupt = model.run_with_cache(corrupt, names=[name])
    # zero-ablate head 2 at positions 3 and 5 only
    seen = {}
    with torch.no_grad(), model.hooks(fwd={name: [zero_ablate(heads=[2], positions=[3, 5]),
                                                  lambda a, h: seen.setdefault("z", a)]}):
        model(clean)
    z, ref = seen["z"], c_clean[name]
    assert torch.all(z[:, [3, 5], 2] == 0)
    mask = torch.ones_like(z, dtype=torch.bool)
    mask[:, [3, 5], 2] = False
    assert torch.equal(z[mask], ref[mask])
    # patching every position from the corrupt cache reproduces the corrupt activation
    seen.clear()
    with torch.no_grad(), model.hooks(fwd={name: [patch_from(c_corrupt), lambda a, h: seen.setdefault("z", a)]}):
        model(clean)
    assert torch.equal(seen["z"], c_corrupt[name])
    # mean ablation with a [d_head]-broadcastable mean on head 0
    mean = c_clean[name].mean((0, 1))  # [head d_head]
    seen.clear()
    with torch.no_grad(), model.hooks(fwd={name: [mean_ablate(mean, heads=0), lambda a, h: seen.setdefault("z", a)]}):
        model(clean)
    assert torch.allclose(seen["z"][:, :, 0], mean[0].expand_as(seen["z"][:, :, 0]))
    # resample ablation from a 1-row cache copies that row
    seen.clear()
    with torch.no_grad(), model.hooks(fwd={name: [resample_ablate(c_corrupt), lambda a, h: seen.setdefault("z", a)]}):
        model(clean)
    assert torch.equal(seen["z"], c_corrupt[name])
    # steering adds exactly scale * v at one position
    v = torch.randn(model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    seen.clear()
    res = "blocks.0.hook_resid_post"
    with torch.no_grad(), model.hooks(fwd={res: [add_vector(v, 2.0, positions=4), lambda a, h: seen.setdefault("r", a)]}):
        model(clean)
    diff = seen["r"] - c_clean[res]
    torch.testing.assert_close(diff[:, 4], (2.0 * v).expand_as(diff[:, 4]))
    assert diff[:, :4].abs().max() == 0 and diff[:, 5:].abs().max() == 0
