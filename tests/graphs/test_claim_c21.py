"""C21's rule just inside and just outside each threshold, and its measurement on the default
organism (slow: trains a transcoder per layer on the model and reads two or more attribution graphs)."""

import pytest

from mechscope.claims import c21_feature_interactions as c21
from mechscope.claims.base import non_finite


def _m(edges, degree=5.0, completeness=0.9, ci=None):
    return {"edges_80_per_node": edges, "edges_80_per_node_ci95": ci or [edges, edges], "median_out_degree": degree,
            "completeness_score": completeness}


def test_c21_rule_thresholds():
    twin = _m(4.0)
    assert c21.verdict(_m(c21.DENSE_EDGES), _m(c21.DENSE_EDGES)) == "supported"
    assert c21.verdict(_m(c21.DENSE_EDGES - 1e-3), _m(c21.DENSE_EDGES)) == "inconclusive"
    assert c21.verdict(_m(c21.DENSE_EDGES, degree=c21.MIN_OUT_DEGREE - 1), _m(3.0)) == "inconclusive"
    assert c21.verdict(_m(c21.SPARSE_EDGES - 1e-3), twin) == "not supported"
    assert c21.verdict(_m(c21.SPARSE_EDGES), _m(c21.SPARSE_EDGES)) == "inconclusive"
    # much sparser than a random network is sparse, however many edges
    assert c21.verdict(_m(5.0), _m(5.0 / c21.NULL_RATIO_SPARSE + 1)) == "not supported"
    assert c21.verdict(_m(5.0), _m(5.0 / c21.NULL_RATIO_DENSE + 0.1)) == "inconclusive"
    assert c21.verdict(_m(5.0, completeness=c21.MIN_COMPLETENESS - 1e-3), twin) == "inconclusive"
    assert c21.verdict(_m(5.0), None) == "inconclusive"
    # the absolute thresholds are read against the interval over graphs (tiny-gpt2, 8 graphs: 1.64 [1.40, 1.93])
    assert c21.verdict(_m(1.4, ci=[1.2, 1.6]), twin) == "inconclusive"
    assert c21.verdict(_m(3.2, ci=[2.9, 3.5]), _m(3.0)) == "inconclusive"
    assert c21.verdict(_m(3.2, ci=[3.0, 3.5]), _m(3.0)) == "supported"


def test_c21_reads_more_graphs_while_a_threshold_is_inside_the_interval():
    """Per-graph edges per node spread widely over prompts (tiny-gpt2: 1.26-2.79 over 8), so two graphs
    could put the mean either side of SPARSE_EDGES with the seed; settled() asks for more until neither
    absolute threshold lies inside the 95% bootstrap interval."""
    assert not c21.settled([c21.SPARSE_EDGES - 0.1, c21.SPARSE_EDGES + 0.1])
    assert not c21.settled([c21.DENSE_EDGES - 0.1, c21.DENSE_EDGES + 0.1])
    assert c21.settled([2.0, 2.2]) and c21.settled([1.2, 1.3]) and c21.settled([3.2, 3.6])


def test_c21_training_stops_growing_with_depth_under_quick():
    from mechscope.claims.base import Budget

    quick, full = Budget.named("quick"), Budget.named("full")
    assert c21.layer_steps(4, quick) == c21.layer_steps(quick.max_layers, quick) == quick.train_steps
    for layers in (12, 30):
        steps = c21.layer_steps(layers, quick)
        assert steps < quick.train_steps and layers * steps <= quick.max_layers * quick.train_steps
        assert c21.layer_steps(layers, full) == full.train_steps
    assert c21.layer_steps(1000, quick) == c21.MIN_LAYER_STEPS


@pytest.mark.slow
def test_c21_measures_the_default_organism():
    import mechscope
    from mechscope.claims.base import Budget

    m = c21.measure(mechscope.load("organism:tiny-gpt2"), Budget(train_steps=100))
    for key in c21.READS:
        assert not non_finite(m.metrics[key]), key
    assert 0 < m.metrics["completeness_score"] <= 1 and m.metrics["n_graphs"] in (2, 4, 8)
    assert len(m.metrics["edges_80_per_node_per_graph"]) == m.metrics["n_graphs"]
    assert c21.verdict(m.metrics, m.metrics) in ("supported", "not supported", "inconclusive")
