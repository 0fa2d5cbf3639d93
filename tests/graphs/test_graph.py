"""Influence, pruning and scores on hand-made graphs with hand-computed answers; the Neuronpedia
JSON and the self-contained, escaped HTML view of a real graph."""


import pytest
import torch

from mechscope.cli.graph import graph_html
from mechscope.graphs.attribute import attribute, logit_targets
from mechscope.graphs.export import EDGE_WIDTH_BINS, neuronpedia_json
from mechscope.graphs.graph import AttributionGraph
from tests.graphs.graph_helpers import random_transcoders


def _hand_graph(adjacency, n_feat, logit_p):
    """n_layers 1, n_pos 1: nodes [features..., error, token, logits...]."""
    return AttributionGraph(prompt="x", input_tokens=[7], token_strings=["x"], n_layers=1,
                            active_features=torch.tensor([[0, 0, i] for i in range(n_feat)]).reshape(-1, 3),
                            activation_values=torch.ones(n_feat), logit_tokens=list(range(len(logit_p))),
                            logit_token_strings=[str(i) for i in range(len(logit_p))],
                            logit_probabilities=torch.tensor(logit_p), adjacency=torch.tensor(adjacency))


def test_influence_and_scores_match_the_hand_computation():
    # nodes: f, err, tok, logit.  logit <- f (3), err (-1); f <- tok (2)
    g = _hand_graph([[0, 0, 2, 0], [0, 0, 0, 0], [0, 0, 0, 0], [3, -1, 0, 0]], 1, [1.0])
    torch.testing.assert_close(g.node_influence(), torch.tensor([0.75, 0.25, 0.75, 0.0]))
    replacement, completeness = g.scores()
    assert replacement == pytest.approx(0.75)
    assert completeness == pytest.approx((0.75 + 0.25 + 0.75 + 0.75) / 2.75)


def test_pruning_drops_the_weak_feature_and_its_edges():
    # two features: f0 carries 95% of the logit's input, f1 5%; both fed by the token
    a = torch.zeros(5, 5)           # f0, f1, err, tok, logit
    a[0, 3], a[1, 3] = 1.0, 1.0
    a[4, 0], a[4, 1] = 19.0, 1.0
    g = _hand_graph(a.tolist(), 2, [1.0])
    pruned = g.prune(node_threshold=0.8, edge_threshold=0.98)
    assert pruned.node_mask.tolist() == [True, False, False, True, True]
    assert bool(pruned.edge_mask[4, 0]) and bool(pruned.edge_mask[0, 3]) and not pruned.edge_mask[:, 1].any()


def test_logit_targets_stop_at_the_desired_probability():
    ids, p = logit_targets(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), max_n_logits=10, desired_logit_prob=0.9)
    assert ids.tolist() == [0, 1, 2] and p.sum() == pytest.approx(0.95)
    ids, _ = logit_targets(torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05])), max_n_logits=2)
    assert ids.tolist() == [0, 1]


def test_neuronpedia_json_and_html_of_a_real_graph(tiny_gpt2_model, tmp_path):
    model = tiny_gpt2_model
    graph = attribute(model, random_transcoders(model), "The <script>alert(1)</script> cat sat")
    data = neuronpedia_json(graph)
    assert set(data) == {"metadata", "qParams", "nodes", "links"}
    ids = {n["node_id"] for n in data["nodes"]}
    assert all(link["source"] in ids and link["target"] in ids for link in data["links"])
    kinds = {n["feature_type"] for n in data["nodes"]}
    assert {"embedding", "logit"} <= kinds and len(data["links"]) > 0
    assert sum(n["is_target_logit"] for n in data["nodes"]) == 1
    page = graph_html(graph)
    assert "<script>alert(1)</script>" not in page and "<script src" not in page and "Plotly.newPlot" in page
    assert data["metadata"]["prompt"].startswith("The")
    d = graph.to_dict()
    assert 0 <= d["replacement_score"] <= 1 and 0 <= d["completeness_score"] <= 1
    # the figure draws every pruned edge, in a few line traces (one per sign and width bin)
    fig = graph.figure()
    pruned = graph.prune(0.8, 0.98)
    kept = pruned.node_mask
    t, s = pruned.edge_mask.nonzero(as_tuple=True)
    n_edges = int((kept[t] & kept[s]).sum())
    lines = [tr for tr in fig.data if tr.mode == "lines"]
    assert n_edges > 10 and len(lines) <= 2 * EDGE_WIDTH_BINS
    assert sum(len(tr.x) for tr in lines) == 3 * n_edges


def test_max_feature_nodes_keeps_the_features_most_influential_on_the_logits(tiny_gpt2_model):
    """One ranking round (max_feature_nodes = update_interval * batch_size): the features kept are the
    top ones by influence through the logit rows alone, computed here from the full graph; their edges
    are the full graph's edges, and the rest of the nodes are unchanged."""
    model = tiny_gpt2_model
    tcs = random_transcoders(model)
    tokens = torch.randint(3, 500, (8,), generator=torch.Generator().manual_seed(5))
    full = attribute(model, tcs, tokens, batch_size=16)
    n_keep = 2 * 16
    part = attribute(model, tcs, tokens, batch_size=16, max_feature_nodes=n_keep, update_interval=2)
    assert full.n_features > n_keep and part.n_features == n_keep
    logit_rows = full.adjacency[full.logit_slice].abs()
    by_logits = (full.logit_probabilities @ (logit_rows / logit_rows.sum(1, keepdim=True)))[:full.n_features]
    expected = by_logits.argsort(descending=True, stable=True)[:n_keep].sort().values
    assert torch.equal(part.active_features, full.active_features[expected])
    keep = torch.cat([expected, torch.arange(full.n_features, full.adjacency.shape[0])])
    torch.testing.assert_close(part.adjacency, full.adjacency[keep][:, keep], atol=1e-6, rtol=1e-5)
    assert attribute(model, tcs, tokens, batch_size=16, max_feature_nodes=10_000).adjacency.shape == full.adjacency.shape
    # several re-ranking rounds: still the full graph's edges among the kept nodes
    rounds = attribute(model, tcs, tokens, batch_size=16, max_feature_nodes=40, update_interval=1)
    kept = torch.tensor([full.active_features.tolist().index(f) for f in rounds.active_features.tolist()])
    keep = torch.cat([kept, torch.arange(full.n_features, full.adjacency.shape[0])])
    assert rounds.n_features == 40
    torch.testing.assert_close(rounds.adjacency, full.adjacency[keep][:, keep], atol=1e-6, rtol=1e-5)
