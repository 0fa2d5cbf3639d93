"""The circuit engine against independent runs: plain clean and corrupt forwards, and single edges
patched by hand with the model's own hooks."""

from __future__ import annotations

import pytest
import torch

from mechscope.circuits.engine import CircuitSetup, answer_logits, evaluate
from mechscope.circuits.graph import Graph
from mechscope.circuits.sources import ablated_values
from mechscope.errors import InputError
from tests.circuits.toys import logit_diff, random_model, setup_for, token_pairs


@pytest.fixture(scope="module", params=["gpt2", "neox", "llama"])
def model(request):
    return random_model(request.param)


def test_graph_edges_follow_the_block_layout():
    g = Graph(2, 2)
    assert g.sources == ["input", "a0.h0", "a0.h1", "m0", "a1.h0", "a1.h1", "m1"]
    assert g.destinations == ["a0", "m0", "a1", "m1", "logits"]
    names = set(g.edge_names())
    assert {"input->a0", "a0.h1->m0", "m0->a1", "a1.h0->m1", "m1->logits"} <= names
    assert "a1.h0->a1" not in names and "m1->m1" not in names
    assert g.n_edges == 1 + 3 + 4 + 6 + 7
    assert Graph(2, 2, parallel_attn_mlp=True).n_edges == 1 + 1 + 4 + 4 + 7   # m_L skips layer L's heads
    mask = g.mask_from_edges(["a0.h1->a1.h0<k>", "input->logits"])   # EAP-IG's split name merges
    assert g.edges_of(mask) == ["a0.h1->a1", "input->logits"]
    with pytest.raises(InputError, match="not an edge"):
        g.mask_from_edges(["m1->a1"])


def test_all_edges_kept_is_clean_and_none_is_corrupt(model):
    setup = setup_for(model)
    g = setup.graph
    got = answer_logits(setup, torch.stack([g.full(), g.empty()]))
    with torch.no_grad():
        clean = model(setup.clean_tokens)[:, -1]
        corrupt = model(setup.corrupt_tokens)[:, -1]
    torch.testing.assert_close(got[0], clean, atol=1e-6, rtol=0)
    torch.testing.assert_close(got[1], corrupt, atol=1e-5, rtol=1e-6)
    # answer_logits serves the full circuit from the clean run; the engine's hooks with nothing ablated add zero
    from mechscope.circuits.engine import engine_hooks

    with torch.no_grad(), model.hooks(fwd=engine_hooks(setup, torch.zeros_like(g.full())[None])):
        hooked = model(setup.clean_tokens)[:, -1]
    torch.testing.assert_close(hooked, clean, atol=1e-6, rtol=0)


def test_a_circuit_asked_for_twice_runs_once(model, monkeypatch):
    """A curve's 0 and 100% points repeat its empty and full circuits: each distinct circuit is run once, the
    full one not at all (it is the clean run), and every request gets its logits."""
    import mechscope.circuits.engine as engine

    setup = setup_for(model)
    g = setup.graph
    masks = torch.stack([g.empty(), g.full(), g.mask_from_edges(["input->logits"]), g.full(), g.empty()])
    want = torch.cat([answer_logits(setup, m) for m in masks[:3]])
    rows = []
    real = engine.forward_to_answer
    monkeypatch.setattr(engine, "forward_to_answer", lambda m, tokens, *a, **k: rows.append(tokens.shape[0]) or real(m, tokens, *a, **k))
    got = answer_logits(setup, masks)
    assert sum(rows) == 2 * setup.n_prompts
    torch.testing.assert_close(got, want[[0, 1, 2, 1, 0]], atol=1e-6, rtol=0)


@pytest.mark.parametrize("ablation", ["mean", "mean_positional", "zero"])
def test_no_edges_is_every_source_ablated(model, ablation):
    """With no edge kept, the final residual is the sum of the ablated source values (+ biases)."""
    setup = setup_for(model, ablation=ablation)
    g = setup.graph
    clean = setup.in_model_space(setup.clean_sources)                  # [n pos n_src d]
    ablated = setup.in_model_space(ablated_values(model, setup.corrupt_tokens, ablation)).expand_as(clean)
    with torch.no_grad():
        _, cache = model.run_with_cache(setup.clean_tokens, names=["ln_final.hook_in"])
    final = cache["ln_final.hook_in"] - clean.sum(2) + ablated.sum(2)   # biases stay
    with torch.no_grad(), model.hooks(fwd={"ln_final.hook_in": lambda x, hook: final}):
        expect = model(setup.clean_tokens)[:, -1]
    torch.testing.assert_close(answer_logits(setup, g.empty())[0], expect, atol=1e-5, rtol=1e-5)


def test_single_edges_match_hand_patching(model):
    setup = setup_for(model)
    g = setup.graph
    diff = setup.in_model_space(setup.ablated) - setup.in_model_space(setup.clean_sources)   # [n pos n_src d]
    cases = {"input->logits": ("ln_final.hook_in", diff[:, :, 0]),
             "a0.h1->a1": ("blocks.1.hook_attn_in", diff[:, :, g.head_index(0, 1)]),
             "m0->m1": ("blocks.1.hook_mlp_in", diff[:, :, g.mlp_index(0)])}
    masks = torch.stack([g.full() & ~g.mask_from_edges([e]) for e in cases])
    got = answer_logits(setup, masks)
    for i, (name, delta) in enumerate(cases.values()):
        with torch.no_grad(), model.hooks(fwd={name: lambda x, hook, d=delta: x + d}):
            expect = model(setup.clean_tokens)[:, -1]
        torch.testing.assert_close(got[i], expect, atol=1e-5, rtol=1e-5)


def test_tiled_circuits_equal_one_at_a_time(model):
    setup = setup_for(model, max_rows=12)                             # 2 circuits per forward
    g = setup.graph
    gen = torch.Generator().manual_seed(0)
    masks = (torch.rand(5, g.n_src, g.n_dst, generator=gen) < 0.5) & g.allowed
    together = evaluate(setup, masks)
    alone = torch.cat([evaluate(setup, m) for m in masks])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("qkv", [False, True])
def test_running_sum_form_equals_summing_the_ablated_groups(model, monkeypatch, qkv):
    """A destination may add the running sum of every upstream difference minus its kept groups instead of
    the sum of its ablated groups (cheaper for small circuits). Forced one way and the other, every circuit
    reads the same: sparse and dense ones, and one whose input edges are all kept (the input group is then
    never recorded). On NeoX's parallel blocks an MLP destination whose running sum already holds its own
    layer's heads falls back to the ablated groups."""
    import mechscope.circuits.engine as engine

    setup = setup_for(model, qkv=qkv)
    g = setup.graph
    gen = torch.Generator().manual_seed(1)
    masks = torch.stack([(torch.rand(g.n_src, g.n_dst, generator=gen) < p) & g.allowed for p in (0.05, 0.2, 0.5, 0.9)])
    masks[0, 0] = g.allowed[0]
    plans, real_plan = [], engine._destination_plan
    monkeypatch.setattr(engine, "_destination_plan", lambda *a: plans.append(real_plan(*a)) or plans[-1])
    got = {}
    for running in (False, True):
        monkeypatch.setattr(engine, "prefer_running_sum", lambda kept, ablated, r=running: r)
        got[running] = answer_logits(setup, masks)
    assert any(plan.running and plan.kept for plan in plans)             # kept groups were subtracted
    torch.testing.assert_close(got[True], got[False], atol=1e-5, rtol=1e-5)


def test_bad_inputs_get_clear_errors():
    model = random_model("gpt2")
    clean, corrupt = token_pairs()
    with pytest.raises(InputError, match="same shape"):
        CircuitSetup.from_tokens(model, clean, corrupt[:, :-1], metric=logit_diff)
    with pytest.raises(InputError, match="unknown ablation"):
        CircuitSetup.from_tokens(model, clean, corrupt, metric=logit_diff, ablation="resample")
    setup = CircuitSetup.from_tokens(model, clean, corrupt, metric=lambda logits, idx: logits[:, :2])
    with pytest.raises(InputError, match="one scalar per prompt"):
        evaluate(setup, setup.graph.full())
    with pytest.raises(InputError, match="masks must be"):
        evaluate(setup_for(model), torch.ones(3, 3, dtype=torch.bool))


def test_eapig_json_round_trip_and_split_merge():
    from mechscope.circuits.eapig_format import from_eapig, to_eapig

    g = Graph(2, 3)
    scores = g.from_edge_vector(torch.linspace(-1, 1, g.n_edges))
    mask = g.mask_from_edges(["input->a0", "a0.h2->a1", "m1->logits"])
    data = to_eapig(g, scores, mask, d_model=16)
    assert "a0.h2->a1.h1<v>" in data["edges"] and "a0.h2->a1" not in data["edges"]
    assert data["nodes"]["a0.h2"]["in_graph"] and not data["nodes"]["a0.h0"]["in_graph"]
    g2, scores2, mask2 = from_eapig(data)
    assert g2 == g and torch.equal(mask2, mask)
    torch.testing.assert_close(scores2, scores, atol=1e-6, rtol=0)
    # an EAP-IG file with one split edge in and a boolean node map imports onto the merged edge
    g3, s3, m3 = from_eapig({"cfg": {"n_layers": 2, "n_heads": 3}, "nodes": {"input": True},
                             "edges": {"a0.h1->a1.h0<q>": {"score": 0.5, "in_graph": True},
                                       "a0.h1->a1.h2<k>": {"score": 0.25, "in_graph": False}}})
    assert g3.edges_of(m3) == ["a0.h1->a1"]
    assert float(s3[g3.head_index(0, 1), 2]) == 0.75
    with pytest.raises(InputError, match="EAP-IG"):
        from_eapig({"edges": {}})


def test_node_circuit_equals_patching_the_missing_head_everywhere(model):
    """Dropping node a0.h1 ablates its output on every edge: the same as patching its hook_result."""
    from mechscope.model.interventions import patch_from

    setup = setup_for(model)
    g = setup.graph
    keep = [n for n in g.sources if n not in ("input", "a0.h1")]
    got = answer_logits(setup, g.mask_from_nodes(keep))[0]
    with torch.no_grad():
        _, corrupt = model.run_with_cache(setup.corrupt_tokens, names=["blocks.0.attn.hook_result"])
        with model.hooks(fwd={"blocks.0.attn.hook_result": patch_from(corrupt, heads=[1])}):
            expect = model(setup.clean_tokens)[:, -1]
    torch.testing.assert_close(got, expect, atol=1e-5, rtol=1e-5)


def test_head_sources_are_the_heads_outputs(model):
    """Heads are kept as z; projected through W_O they are attn.hook_result, head by head."""
    setup = setup_for(model)
    names = [f"blocks.{layer}.attn.hook_result" for layer in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(setup.clean_tokens, names=names)
    stacked = setup.in_model_space(setup.clean_sources)
    g = setup.graph
    for layer in range(model.cfg.n_layers):
        first = g.head_index(layer, 0)
        torch.testing.assert_close(stacked[:, :, first:first + g.n_heads], cache[names[layer]], atol=1e-6, rtol=1e-5)
