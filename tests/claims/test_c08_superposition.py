"""C08: the verdict rule on hand-written metrics, and (slow) the quick run end to end."""

import pytest

from mechscope.claims import c08_superposition as c08
from mechscope.claims.base import Budget


def metrics(dense=1.0, sparse=0.33, represented=5, shape="pentagon"):
    return {"dims_per_feature_dense": dense, "dims_per_feature_sparsest": sparse, "n_hidden": 2,
            "represented_sparsest": represented, "shape_sparsest": shape}


def test_rule():
    assert c08.verdict(metrics()) == "supported"
    assert c08.verdict(metrics(shape="two antipodal pairs", sparse=0.5, represented=4)) == "supported"
    assert c08.verdict(metrics(sparse=0.95, represented=2, shape="orthogonal pair")) == "not supported"
    assert c08.verdict(metrics(shape="irregular 5")) == "inconclusive"
    assert c08.verdict(metrics(sparse=0.7, represented=3)) == "inconclusive"
    assert c08.verdict(metrics(dense=0.6)) == "inconclusive"


def test_module_surface():
    from mechscope.claims.catalogue import BY_ID

    assert c08.ID == "C08" and BY_ID["C08"].slug == "superposition"
    assert c08.RULE and c08.NULL == "none"  # model-independent: outside the model's tally


@pytest.mark.slow
def test_quick_run_supports_and_is_fast():
    import time

    start = time.perf_counter()
    result = c08.measure(None, Budget.named("quick"))
    assert c08.verdict(result.metrics, None) == "supported", result.evidence
    assert result.metrics["shape_sparsest"] == "pentagon"
    assert result.metrics["shapes"][0] == "orthogonal pair"
    assert time.perf_counter() - start < 20
    assert result.key_metric == "dims_per_feature_sparsest"
