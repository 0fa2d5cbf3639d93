"""Influence, pruning and scores on hand-made graphs with hand-computed answers; the Neuronpedia
JSON and the self-contained, escaped HTML view of a real graph."""

import json

import pytest
import torch

from mechscope.graphs.attribute import attribute, logit_targets
from mechscope.graphs.export import graph_html, neuronpedia_json, save_graph
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
    save_graph(graph, tmp_path / "g.json", tmp_path / "g.html")
    assert json.loads((tmp_path / "g.json").read_text())["metadata"]["prompt"].startswith("The")
    d = graph.to_dict()
    assert 0 <= d["replacement_score"] <= 1 and 0 <= d["completeness_score"] <= 1
