"""The replacement model reproduces the logits, and setting one feature in it moves every target by
exactly its edge weight (circuit-tracer's own exactness check, against forward reruns)."""

import pytest
import torch

from mechscope.errors import InputError
from mechscope.graphs.attribute import attribute
from mechscope.graphs.replacement import _PerLayer, replacement_forward
from tests.graphs.graph_helpers import random_clt, random_transcoders


@pytest.mark.parametrize("skip", [False, True])
def test_replacement_forward_reproduces_the_logits(tiny_gpt2_model, skip):
    model = tiny_gpt2_model
    tokens = torch.randint(0, 5000, (2, 12), generator=torch.Generator().manual_seed(0))
    trace = replacement_forward(model, random_transcoders(model, skip=skip), tokens)
    with torch.no_grad():
        clean = model(tokens)
    assert float((trace.logits.detach() - clean).abs().max()) < 1e-5
    assert all(bool((trace.acts[layer] > 0).any()) for layer in range(model.cfg.n_layers))
    last = replacement_forward(model, random_transcoders(model, skip=skip), tokens, last_logits_only=True)
    assert last.logits.shape == (2, 1, clean.shape[-1])
    torch.testing.assert_close(last.logits.detach()[:, 0], clean[:, -1], atol=1e-5, rtol=1e-6)
    # the same linear model underneath: a logit's gradient to the embedding leaf is the full forward's
    full_grad = torch.autograd.grad(trace.logits[:, -1, 7].sum(), trace.embed)[0]
    last_grad = torch.autograd.grad(last.logits[:, 0, 7].sum(), last.embed)[0]
    torch.testing.assert_close(last_grad, full_grad, atol=1e-6, rtol=1e-5)


def parallel_model(arch: str):
    """A random parallel attention+MLP model (NeoX / Pythia: two norms; GPT-J: one norm feeds both), its
    norms given distinct non-trivial gains, so an MLP linearised through the wrong norm or the wrong
    residual would not reproduce the logits."""
    from mechscope import HookedModel
    from tests.helpers import gpt2_tokenizer, small_hf_model

    hf = small_hf_model(arch, vocab=5000)
    with torch.no_grad():
        for i, (name, p) in enumerate(hf.named_parameters()):
            if "norm" in name or "ln_" in name:
                p.normal_(0.5 if p.ndim else 0.0, 0.4, generator=torch.Generator().manual_seed(i))
    model = HookedModel.from_hf(hf, gpt2_tokenizer(), spec=f"random:{arch}")
    assert model.cfg.parallel_attn_mlp
    return model


@pytest.mark.parametrize("arch", ["neox", "gptj"])
def test_replacement_forward_reproduces_the_logits_on_parallel_blocks(arch):
    """The MLP of a parallel block reads the norm of resid_pre, not of resid_mid: logits and the error
    node (true MLP output minus the transcoder's) are exact, and one feature's edges match reruns."""
    model = parallel_model(arch)
    tokens = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(0))
    tcs = random_transcoders(model, skip=True)
    trace = replacement_forward(model, tcs, tokens)
    with torch.no_grad():
        clean = model(tokens)
    torch.testing.assert_close(trace.logits.detach(), clean, atol=1e-5, rtol=1e-6)
    layer = model.cfg.n_layers - 1
    name_in, name_out = f"blocks.{layer}.ln2.hook_normalized", f"blocks.{layer}.hook_mlp_out"
    _, cache = model.run_with_cache(tokens, names=[name_in, name_out])
    x, view = cache[name_in], _PerLayer(tcs)      # x: the MLP input the real model computed
    with torch.no_grad():
        acts = view.layer_activation(layer, view.layer_pre_activations(layer, x))
        written = view.layer_written(layer, {layer: acts}, x)
    torch.testing.assert_close(trace.acts[layer].detach(), acts)
    torch.testing.assert_close(trace.errors[layer].detach(), cache[name_out] - written, atol=1e-5, rtol=1e-5)
    # the linearisation goes through the MLP's own norm: a layer-0 feature's pre-activation moves with the
    # embedding (= resid_pre of block 0) as W_enc[:, f] * input_scale * gain_ln2, centred, over the frozen divisor
    tc, ln2, (row, pos) = tcs[0], model.structure.blocks[0].ln2, (0, 5)
    f = int(trace.acts[0][row, pos].argmax())
    grad = torch.autograd.grad(trace.pre[0][row, pos, f], trace.embed)[0][row, pos]
    _, cache = model.run_with_cache(tokens, names=["blocks.0.ln2.hook_scale"])
    expected = (tc.W_enc[:, f] * tc.input_scale * ln2.weight).detach()
    expected = (expected - expected.mean()) / cache["blocks.0.ln2.hook_scale"][row, pos]
    torch.testing.assert_close(grad, expected, atol=1e-5, rtol=1e-4)


def test_replacement_forward_reproduces_the_logits_on_real_llama(stories260k):
    """RMSNorm, rotary positions, gated MLP: the real stories260K."""
    tokens = stories260k.to_tokens("Once upon a time there was a little cat")
    trace = replacement_forward(stories260k, random_transcoders(stories260k, arch="relu_l1"), tokens)
    with torch.no_grad():
        clean = stories260k(tokens)
    # logits reach 19 here; merely hooking attn.hook_pattern (the attention function's explicit-softmax
    # path) moves them by 9e-6, so the bound is 1e-5 plus 1e-6 relative
    torch.testing.assert_close(trace.logits.detach(), clean, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("model_name", ["tiny_gpt2_model", "stories260k"])
def test_replacement_forward_with_a_cross_layer_transcoder_reproduces_the_logits(model_name, request):
    model = request.getfixturevalue(model_name)
    tokens = torch.randint(3, 500, (2, 12), generator=torch.Generator().manual_seed(0))
    clt = random_clt(model)
    trace = replacement_forward(model, clt, tokens)
    with torch.no_grad():
        clean = model(tokens)
    torch.testing.assert_close(trace.logits.detach(), clean, atol=1e-5, rtol=1e-6)
    assert all(bool((trace.acts[layer] > 0).any()) for layer in range(model.cfg.n_layers))
    # the error node is the true MLP output minus what the CLT writes from every layer up to this one
    last = model.cfg.n_layers - 1
    _, cache = model.run_with_cache(tokens, names=[f"blocks.{last}.hook_mlp_out"])
    acts = {layer: trace.acts[layer].detach() for layer in range(model.cfg.n_layers)}
    by_hand = sum(acts[s] @ clt.W_dec[clt._block(s), last * model.cfg.d_model:(last + 1) * model.cfg.d_model]
                  for s in range(last + 1))
    by_hand = (by_hand + clt.b_dec[last * model.cfg.d_model:]) / clt.output_scale[last]
    torch.testing.assert_close(trace.errors[last].detach(), cache[f"blocks.{last}.hook_mlp_out"] - by_hand.detach(),
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("model_name,dictionary", [("tiny_gpt2_model", "per-layer"), ("stories260k", "per-layer"),
                                                   ("tiny_gpt2_model", "clt"), ("neox", "per-layer")])
def test_setting_one_feature_moves_each_target_by_its_edge_weight(model_name, dictionary, request):
    """100 random source features: zero each in the frozen replacement model (a forward rerun) and
    compare every target's change (feature pre-activations and demeaned logits) with its edge."""
    model = parallel_model(model_name) if model_name == "neox" else request.getfixturevalue(model_name)
    tokens = torch.randint(3, 500, (10,), generator=torch.Generator().manual_seed(1))
    tcs = random_transcoders(model, arch="topk", skip=True) if dictionary == "per-layer" else random_clt(model)
    graph = attribute(model, tcs, tokens, batch_size=64)
    trace = replacement_forward(model, tcs, tokens[None])
    feats = graph.active_features
    logit_ids = torch.tensor(graph.logit_tokens)

    def targets(tr):
        pre = torch.stack([tr.pre[int(lay)][0, p, f] for lay, p, f in feats.tolist()])
        last = tr.logits[0, -1]
        return torch.cat([pre, last[logit_ids] - last.mean()]).detach()

    base = targets(trace)
    rows = list(range(graph.n_features)) + list(range(graph.logit_slice.start, graph.logit_slice.stop))
    gen = torch.Generator().manual_seed(2)
    sources = torch.randperm(graph.n_features, generator=gen)[:100].tolist()
    assert len(sources) == min(100, graph.n_features) and graph.n_features >= 50
    worst = 0.0
    for s in sources:
        layer, p, f = feats[s].tolist()
        acts = {lay: a.detach().clone() for lay, a in trace.acts.items()}
        acts[layer][0, p, f] = 0.0
        moved = base - targets(replacement_forward(model, tcs, tokens[None], frozen=trace.frozen, acts=acts))
        worst = max(worst, float((moved - graph.adjacency[rows, s]).abs().max()))
    assert worst < 5e-4
    assert float(graph.adjacency.abs().max()) > 0.05     # the edges are not all (trivially) zero


def test_missing_layer_says_which(tiny_gpt2_model):
    tcs = random_transcoders(tiny_gpt2_model)
    del tcs[1]
    with pytest.raises(InputError, match="every layer"):
        replacement_forward(tiny_gpt2_model, tcs, torch.zeros(1, 3, dtype=torch.long))


@pytest.mark.parametrize("arch", ["gpt2", "llama", "gemma"])
def test_frozen_norm_has_the_derivative_of_the_norm_at_fixed_scale(arch):
    """Against the norm module itself: along a direction v that leaves the divisor unchanged to first
    order (v orthogonal to the input and, for LayerNorm, to the all-ones vector), the real norm and
    the frozen one move alike. Covers LayerNorm, RMSNorm and Gemma's (1 + weight) RMSNorm."""
    from mechscope import HookedModel
    from mechscope.graphs.replacement import _frozen_norm
    from tests.helpers import gpt2_tokenizer, small_hf_model

    hf = small_hf_model(arch, vocab=5000)
    with torch.no_grad():
        for name, p in hf.named_parameters():
            if "norm" in name or "ln_" in name:
                p.normal_(0.3, 0.5, generator=torch.Generator().manual_seed(1))   # a non-trivial gain
    model = HookedModel.from_hf(hf, gpt2_tokenizer(), spec=f"random:{arch}")
    module = model.structure.blocks[0].ln2
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, model.cfg.d_model, generator=gen)
    v = torch.randn(3, model.cfg.d_model, generator=gen)
    layernorm = model.cfg.norm == "layernorm"
    basis = [torch.ones_like(x), x - x.mean(-1, keepdim=True)] if layernorm else [x]   # orthogonal pairs
    for b in basis:
        b = b / b.norm(dim=-1, keepdim=True)
        v = v - (v * b).sum(-1, keepdim=True) * b
    s = torch.sqrt((x - x.mean(-1, keepdim=True) if layernorm else x).pow(2).mean(-1, keepdim=True)
                   + getattr(module, "eps", getattr(module, "variance_epsilon", 1e-5)))
    frozen, stash = {}, {"x": x, "blocks.0.ln2.hook_scale": s}
    with torch.no_grad():
        out = module(x)
    fn = _frozen_norm(module, model.cfg.norm, frozen, "blocks.0.ln2.hook_normalized", "x", stash,
                      float(model.table.norm_weight_offset))
    fn(out, None)
    eps = 1e-3
    with torch.no_grad():      # central differences: the frozen norm is linear, the real one has curvature
        real = (module(x + eps * v) - module(x - eps * v)) / (2 * eps)
        stash["x"] = x + eps * v
        up = fn(out, None)
        stash["x"] = x - eps * v
        linear = (up - fn(out, None)) / (2 * eps)
    torch.testing.assert_close(linear, real, atol=1e-3, rtol=1e-3)


def test_bos_position_has_no_nodes_and_the_other_edges_do_not_move(tiny_gpt2_model):
    """circuit-tracer's zero_positions: with BOS first, position 0 has no feature nodes and its error nodes
    have no edges, the replacement model still gives the model's logits, and every other edge equals the
    graph's without it (a direct effect does not depend on which other nodes are leaves)."""
    model = tiny_gpt2_model
    tokens = torch.cat([torch.tensor([model.bos_token_id]),
                        torch.randint(3, 500, (9,), generator=torch.Generator().manual_seed(3))])
    tcs = random_transcoders(model)
    trace = replacement_forward(model, tcs, tokens[None], zero_positions=1)
    with torch.no_grad():
        torch.testing.assert_close(trace.logits.detach(), model(tokens[None]), atol=1e-5, rtol=1e-6)
    graph = attribute(model, tcs, tokens)                   # BOS first: zero_positions 1 by default
    full = attribute(model, tcs, tokens, zero_positions=0)
    assert bool((graph.active_features[:, 1] > 0).all()) and bool((full.active_features[:, 1] == 0).any())
    assert bool((attribute(model, tcs, tokens[1:]).active_features[:, 1] == 0).any())   # no BOS: nothing dropped
    n_pos = len(tokens)
    bos_errors = [graph.error_slice.start + layer * n_pos for layer in range(model.cfg.n_layers)]
    assert float(graph.adjacency[:, bos_errors].abs().max()) == 0
    keep = torch.cat([(full.active_features[:, 1] > 0).nonzero().squeeze(-1),
                      torch.arange(full.n_features, full.adjacency.shape[0])])
    expected = full.adjacency[keep][:, keep]
    assert float(expected[:, bos_errors].abs().max()) > 0        # the error at BOS is a node without the rule
    expected[:, bos_errors] = 0
    torch.testing.assert_close(graph.adjacency, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dictionary", ["per-layer", "clt"])
def test_encoder_and_decoder_directions_are_the_dictionarys_own(tiny_gpt2_model, dictionary):
    """attribute contracts with layer_encoder / layer_decoder instead of differentiating through the
    dictionary: they must be the derivative of layer_pre_activations and what layer_written adds per unit."""
    from mechscope.graphs.replacement import dictionary_view

    model = tiny_gpt2_model
    tcs = random_transcoders(model, skip=True) if dictionary == "per-layer" else random_clt(model)
    for module in (tcs.values() if dictionary == "per-layer" else [tcs]):     # scales that are not 1
        module.input_scale.mul_(1.7)
        module.output_scale.mul_(0.6)
    view, d, n_layers = dictionary_view(tcs), model.cfg.d_model, model.cfg.n_layers
    x = torch.randn(5, d, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        for layer in range(n_layers):
            moved = view.layer_pre_activations(layer, x) - view.layer_pre_activations(layer, torch.zeros(1, d))
            torch.testing.assert_close(moved, x @ view.layer_encoder(layer), atol=1e-5, rtol=1e-5)
        silent = {s: torch.zeros(1, view.layer_encoder(s).shape[1]) for s in range(n_layers)}
        for source in range(n_layers):
            one = {**silent, source: silent[source].clone()}
            one[source][0, 3] = 1.0
            for target in range(n_layers):
                step = view.layer_written(target, one, x[:1]) - view.layer_written(target, silent, x[:1])
                dec = view.layer_decoder(source, target)
                expected = torch.zeros(d) if dec is None else dec[3]
                torch.testing.assert_close(step[0], expected, atol=1e-6, rtol=1e-5)
