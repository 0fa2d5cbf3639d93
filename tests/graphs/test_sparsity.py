"""Interaction sparsity on a planted graph: feature A of layer 0 writes only along the encoder of
feature B of layer 1 (every other layer-1 encoder is orthogonal to A's write, and layer 1's attention
is silenced), so A must be B's top (feature or token) parent with out-degree 1."""

import torch

from mechscope import HookedModel
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder
from mechscope.graphs.attribute import attribute
from mechscope.graphs.sparsity import edges_for_influence, interaction_sparsity, out_degree
from tests.helpers import gpt2_tokenizer, small_hf_model


def _planted():
    hf = small_hf_model("gpt2", seed=3)
    with torch.no_grad():                       # layer 1 attention writes nothing: no cross-position path
        hf.transformer.h[1].attn.c_proj.weight.zero_()
        hf.transformer.h[1].attn.c_proj.bias.zero_()
    model = HookedModel.from_hf(hf, gpt2_tokenizer(), spec="planted")
    d, gen = 64, torch.Generator().manual_seed(0)
    u = torch.randn(d, generator=gen)
    u = u - u.mean()
    u /= u.norm()
    tcs = {}
    for layer in (0, 1):
        tc = create_transcoder(TranscoderConfig.for_mlp(d, layer, architecture="relu_l1", d_sae=8,
                                                        normalize_activations=False))
        with torch.no_grad():
            tc.W_enc.copy_(torch.randn(d, 8, generator=gen))
            tc.W_dec.copy_(0.1 * torch.randn(8, d, generator=gen))
            tc.b_enc.zero_()
            tc.b_dec.zero_()
        tcs[layer] = tc.eval()
    g1 = hf.transformer.h[1].ln_2.weight.detach()
    read = g1 * u                                # what A's write looks like after layer 1's frozen norm (up to 1/s)
    read /= read.norm()
    with torch.no_grad():
        tcs[0].W_enc[:, 0] = 0.0                 # A = latent 0 of layer 0: always on, activation 3
        tcs[0].b_enc[0] = 3.0
        tcs[0].W_dec[0] = u
        enc1 = tcs[1].W_enc
        enc1 -= read[:, None] * (read @ enc1)[None, :]   # every layer-1 encoder orthogonal to A's write ...
        enc1[:, 0] = read                                # ... except B = latent 0 of layer 1
        tcs[1].b_enc[0] = 20.0                   # B on at every position
    return model, tcs


def test_a_writing_only_along_b_is_b_top_parent_with_out_degree_one():
    model, tcs = _planted()
    tokens = torch.randint(0, 5000, (6,), generator=torch.Generator().manual_seed(1))
    graph = attribute(model, tcs, tokens, batch_size=32)
    feats = graph.active_features.tolist()
    a_nodes = [i for i, (lay, p, f) in enumerate(feats) if lay == 0 and f == 0]
    b_nodes = {p: i for i, (lay, p, f) in enumerate(feats) if lay == 1 and f == 0}
    assert len(a_nodes) == 6 and len(b_nodes) == 6
    degree = out_degree(graph, share=0.01)
    for a in a_nodes:
        pos = feats[a][1]
        b = b_nodes[pos]
        parents = graph.adjacency[b].clone()
        parents[graph.error_slice] = 0         # the hand-made layer-0 transcoder is not the real MLP: its error
        assert int(parents.abs().argmax()) == a  # node cancels A's write in value; A is B's top non-error parent
        assert int(degree[a]) == 1
    layer1 = [i for i, (lay, p, f) in enumerate(feats) if lay == 1 and f != 0]
    assert float(graph.adjacency[layer1][:, a_nodes].abs().max()) < 1e-5 * float(graph.adjacency.abs().max())
    s = interaction_sparsity(graph).to_dict()
    assert 0 < s["edge_share_80"] <= s["edge_share_98"] <= 1
    assert edges_for_influence(graph, 1.0) == 1.0 or edges_for_influence(graph, 1.0) > s["edge_share_98"]
