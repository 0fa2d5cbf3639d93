"""Split attention destinations (``Graph(qkv=True)``: one per head and q / k / v input).

The split graph is the merged one with each attention destination cut into its heads' inputs, so:
the engine on a split mask that keeps every split edge of a merged circuit is the merged engine;
first-order scores summed over a layer's split destinations are the merged scores; kept all /
kept none are the clean / corrupt runs; and EAP-IG's JSON carries the split edges one for one.
"""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits import acdc, from_eapig, greedy, to_eapig
from mechscope.circuits.attribution import eap, eap_ig_activations, eap_ig_inputs, exact
from mechscope.circuits.engine import answer_logits, evaluate
from mechscope.circuits.graph import Graph
from mechscope.errors import InputError
from tests.circuits.toys import check_against_single_edges, random_model, setup_for


@pytest.fixture(scope="module", params=["gpt2", "llama", "neox"])
def setups(request):
    """(merged setup, split setup) on one model: GPT-2, LLaMA with grouped-query attention, and NeoX
    (parallel attention and MLP, per-head fused q/k/v; every other adapter measured the same by hand)."""
    model = random_model(request.param)
    return setup_for(model), setup_for(model, qkv=True)


def test_split_graph_layout():
    g = Graph(2, 2, qkv=True)
    assert g.destinations == ["a0.h0<q>", "a0.h1<q>", "a0.h0<k>", "a0.h1<k>", "a0.h0<v>", "a0.h1<v>", "m0",
                              "a1.h0<q>", "a1.h1<q>", "a1.h0<k>", "a1.h1<k>", "a1.h0<v>", "a1.h1<v>", "m1", "logits"]
    assert g.n_edges == 6 * 1 + 3 + 6 * 4 + 6 + 7                 # each merged attention edge becomes 3 n_heads
    assert {"a0.h1->a1.h0<k>", "input->a0.h1<v>"} <= set(g.edge_names())
    merged = g.mask_from_edges(["a0.h1->a1"])                      # a merged name keeps all its split edges
    assert g.edges_of(merged) == [f"a0.h1->a1.h{h}<{x}>" for x in "qkv" for h in range(2)]
    assert torch.equal(g.merge(merged), g.merged.mask_from_edges(["a0.h1->a1"]))
    assert torch.equal(g.split(g.merge(merged)), merged)
    gqa = Graph(1, 4, qkv=True, n_kv_heads=2)
    assert gqa.destinations[:8] == ["a0.h0<q>", "a0.h1<q>", "a0.h2<q>", "a0.h3<q>",
                                    "a0.h0<k>", "a0.h1<k>", "a0.h0<v>", "a0.h1<v>"]
    # kv head 1 feeds query heads 2 and 3
    assert gqa.feeds[5].nonzero().flatten().tolist() == [gqa.head_index(0, 2), gqa.head_index(0, 3)]
    with pytest.raises(InputError, match="unknown node"):
        g.mask_from_edges(["a0.h1->a1.h2<q>"])


def test_kept_all_is_clean_none_is_corrupt_and_split_masks_run_the_merged_circuit(setups):
    merged, split = setups
    g, gm = split.graph, merged.graph
    got = answer_logits(split, torch.stack([g.full(), g.empty()]))
    torch.testing.assert_close(got[0], split.clean_answer_logits, atol=1e-6, rtol=0)
    with torch.no_grad():
        corrupt = split.model(split.corrupt_tokens)[:, -1]
    torch.testing.assert_close(got[1], corrupt, atol=1e-5, rtol=1e-6)
    circuits = (torch.rand(4, gm.n_src, gm.n_dst, generator=torch.Generator().manual_seed(0)) < 0.5) & gm.allowed
    torch.testing.assert_close(evaluate(split, torch.stack([g.split(c) for c in circuits])),
                               evaluate(merged, circuits), atol=1e-5, rtol=1e-5)


def test_one_split_edge_is_that_heads_input_patched(setups):
    """Ablating a0.h1 -> a1.h1<v> alone equals a run where hook_v_input of layer 1, kv head 1, reads
    (corrupt - clean) of head a0.h1 more, built from the setup's own source values."""
    _, split = setups
    g, model = split.graph, split.model
    kv = g.kv_heads - 1
    mask = g.full()
    mask[g.head_index(0, 1), g.destinations.index(f"a1.h{kv}<v>")] = False
    delta = (split.ablated[1] - split.clean_sources[1])[:, :, 1] @ split.w_o[0, 1]      # [n pos d_model]

    def add(x, hook):
        x = x.clone()
        x[:, :, kv] += delta
        return x
    with torch.no_grad(), model.hooks(fwd={"blocks.1.hook_v_input": add}):
        expect = model(split.clean_tokens)[:, -1]
    torch.testing.assert_close(answer_logits(split, mask)[0], expect, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("method", [eap, eap_ig_inputs, eap_ig_activations])
def test_split_scores_sum_to_the_merged_scores(setups, method):
    merged, split = setups
    per_head, whole = method(split), method(merged)
    assert per_head.shape == (split.graph.n_src, split.graph.n_dst)
    assert float(whole.abs().max()) > 1e-3
    torch.testing.assert_close(split.graph.merge(per_head), whole, atol=1e-6, rtol=1e-5)


def test_exact_split_scores_are_single_split_edges():
    split = setup_for(random_model("gpt2"), qkv=True, max_rows=60)
    check_against_single_edges(split, exact(split), every=17)


def test_greedy_and_acdc_on_the_split_graph(setups):
    _, split = setups
    g = split.graph
    scores = eap(split)
    mask = greedy(g, scores, 12)
    assert int(mask.sum()) == 12
    for _, d in mask.nonzero().tolist():        # every kept edge's destination is read by a kept source, or logits
        assert d == g.n_dst - 1 or bool(mask[g.feeds[d]].any())
    found = acdc(split, 0.05, objective="kl")
    assert found.mask.shape == (g.n_src, g.n_dst) and not bool((found.mask & ~g.allowed).any())


def test_eapig_json_carries_split_edges(setups):
    merged, split = setups
    g = split.graph
    scores = torch.randn(g.n_src, g.n_dst, generator=torch.Generator().manual_seed(1)) * g.allowed
    mask = greedy(g, scores, 9)
    data = to_eapig(g, scores, mask)
    assert len(data["edges"]) == Graph(g.n_layers, g.n_heads, g.parallel_attn_mlp, qkv=True).n_edges  # per query head
    back_graph, back_scores, back_mask = from_eapig(data, qkv=True)
    as_eap_ig_writes = {**data, "cfg": {k: v for k, v in data["cfg"].items() if k != "n_key_value_heads"}}
    assert torch.equal(from_eapig(as_eap_ig_writes, qkv=True, n_kv_heads=g.kv_heads)[1], back_scores)
    assert back_graph == g
    torch.testing.assert_close(back_scores, scores, atol=1e-6, rtol=1e-6)
    assert torch.equal(back_mask, mask)
    merged_name = {"cfg": data["cfg"], "edges": {"input->a0": {"score": 1.5, "in_graph": True}}}
    _, shared, kept = from_eapig(merged_name, qkv=True)                 # a merged name onto a split graph
    assert float(shared[0, g.attn_dst(0)].sum()) == pytest.approx(1.5) and bool(kept[0, g.attn_dst(0)].all())
    merged_graph, merged_scores, _ = from_eapig(data)                # onto one destination per layer
    assert merged_graph == merged.graph
    torch.testing.assert_close(merged_scores, g.merge(scores), atol=1e-5, rtol=1e-5)
