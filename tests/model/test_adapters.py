"""The architecture tables: coverage against the docs, refused variants, and what sets the newer
tables apart (GPT-Neo's unscaled local attention, OPT's offset positions and flattened MLP, fused
[gate | up] projections), each against an independent computation."""

from __future__ import annotations

import re

import pytest
import torch
import transformers

from mechscope import HookedModel
from mechscope.errors import UnsupportedArchitectureError
from mechscope.model.adapters import supported_classes, table_for
from tests.helpers import REPO, gpt2_tokenizer, small_hf_model

DOC = REPO / "docs" / "adding-an-architecture.md"


def _documented_classes() -> list[str]:
    text = DOC.read_text(encoding="utf-8")
    table = text.split("<!-- supported-classes: begin -->")[1].split("<!-- supported-classes: end -->")[0]
    return re.findall(r"^\| `(\w+)` \|", table, flags=re.M)


def _bare(cls_name: str, **config):
    """An object of class `cls_name` with the class's default HF config: all table_for reads."""
    config_cls = getattr(transformers, cls_name).config_class
    return type(cls_name, (), {"config": config_cls(**config)})()


def test_docs_list_exactly_the_supported_classes():
    assert sorted(_documented_classes()) == supported_classes()


@pytest.mark.parametrize("cls_name", _documented_classes())
def test_every_documented_class_has_a_table(cls_name):
    assert cls_name in table_for(_bare(cls_name)).hf_classes


@pytest.mark.parametrize("cls_name, config, why", [
    ("OPTForCausalLM", {"do_layer_norm_before": False}, "do_layer_norm_before=False"),
    ("OPTForCausalLM", {"word_embed_proj_dim": 512}, "project_in"),
    ("StableLmForCausalLM", {"use_parallel_residual": True}, "use_parallel_residual"),
])
def test_unadapted_variants_are_refused(cls_name, config, why):
    with pytest.raises(UnsupportedArchitectureError, match=f"{cls_name} is supported, but not this variant.*{why}"):
        table_for(_bare(cls_name, **config))


def test_olmo2_is_refused_not_mangled():
    with pytest.raises(UnsupportedArchitectureError, match="no adapter for Olmo2ForCausalLM"):
        table_for(_bare("Olmo2ForCausalLM"))


def _model(arch: str) -> HookedModel:
    return HookedModel.from_hf(small_hf_model(arch, vocab=1000), gpt2_tokenizer(), spec=arch)


def _tokens(n: int = 12, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 1000, (2, n), generator=torch.Generator().manual_seed(seed))


def test_gpt_neo_scores_are_unscaled_and_local_layers_see_a_window():
    model = _model("gpt_neo")
    window = model.hf_model.config.window_size
    _, cache = model.run_with_cache(_tokens(), names=lambda n: n.endswith(("hook_q", "hook_k", "attn_scores", "pattern")))
    kinds = model.hf_model.config.attention_layers
    assert kinds == ["global", "local"]
    for layer, kind in enumerate(kinds):
        qk = torch.einsum("bqhd,bkhd->bhqk", cache["q", layer], cache["k", layer])   # no 1/sqrt(d_head)
        pos = torch.arange(qk.shape[-1])
        allowed = (pos[None, :] <= pos[:, None])
        if kind == "local":
            allowed &= pos[None, :] > pos[:, None] - window
        torch.testing.assert_close(cache["attn_scores", layer][..., allowed], qk[..., allowed], atol=1e-5, rtol=0)
        assert cache["pattern", layer][..., ~allowed].abs().max() == 0
        assert (cache["pattern", layer][..., allowed] > 0).all()


def test_opt_positions_skip_the_offset_rows_and_mlp_hooks_see_batch_and_position():
    model = _model("opt")
    tokens = _tokens()
    _, cache = model.run_with_cache(tokens, names=["hook_pos_embed", "blocks.0.mlp.hook_pre", "blocks.0.hook_mlp_out"])
    assert model.W_pos.shape == (model.cfg.n_ctx, model.cfg.d_model)
    torch.testing.assert_close(cache["hook_pos_embed"][0], model.W_pos[: tokens.shape[1]], atol=0, rtol=0)
    assert cache["pre", 0].shape == (2, tokens.shape[1], model.cfg.d_mlp)
    # zeroing the post-activation of one position leaves that position's mlp_out = b_out, others alone
    def zero_pos3(post, hook):
        post = post.clone()
        post[:, 3] = 0
        return post
    with torch.no_grad(), model.hooks(fwd={"blocks.0.mlp.hook_post": zero_pos3}):
        _, ablated = model.run_with_cache(tokens, names=["blocks.0.hook_mlp_out"])
    torch.testing.assert_close(ablated["mlp_out", 0][:, 3], model.b_out[0].expand(2, -1), atol=1e-6, rtol=0)
    torch.testing.assert_close(ablated["mlp_out", 0][:, :3], cache["mlp_out", 0][:, :3], atol=0, rtol=0)


@pytest.mark.parametrize("arch", ["phi3", "opt"])
def test_gradient_at_mlp_pre_equals_autograd(arch):
    """Fused [gate | up] halves (Phi-3) and flattened MLPs (OPT) still put hook_pre in the graph."""
    model = _model(arch)
    tokens = _tokens()
    name = "blocks.0.mlp.hook_pre"
    metric = lambda logits: logits[:, -1, 7].sum()  # noqa: E731
    _, cache = model.run_with_cache(tokens, names=[name], grad_metric=metric)
    captured = {}

    def leaf(act, hook):
        captured["x"] = act.detach().requires_grad_(True)
        return captured["x"]

    with torch.enable_grad(), model.hooks(fwd={name: leaf}):
        metric(model(tokens)).backward()
    assert cache[name + "_grad"].abs().sum() > 0
    torch.testing.assert_close(cache[name + "_grad"], captured["x"].grad, atol=1e-6, rtol=1e-5)
    model.hf_model.zero_grad(set_to_none=True)


def test_phi3_zeroed_gate_silences_the_mlp():
    """SiLU(0) = 0, so a zeroed gate half makes up * act(gate) = 0 and mlp_out = 0 (no biases)."""
    model = _model("phi3")
    zero = lambda act, hook: torch.zeros_like(act)  # noqa: E731
    with torch.no_grad(), model.hooks(fwd={"blocks.1.mlp.hook_pre": zero}):
        _, cache = model.run_with_cache(_tokens(), names=["blocks.1.mlp.hook_post", "blocks.1.hook_mlp_out"])
    assert cache["post", 1].abs().max() == 0
    assert cache["mlp_out", 1].abs().max() == 0
