"""Fixtures for the report tests: a package of fake claim modules, and a model with a planted token."""

from __future__ import annotations

import itertools
import textwrap

import pytest

EVIL = "<script>alert(1)</script>"

# Fake claim modules, by file name. Together they cover every way a claim can end.
FAKE_CLAIMS = {
    # supported; reports the first random number it draws, to check per-claim seeding
    "c01_fake_ok.py": '''
        import torch
        import plotly.graph_objects as go
        from mechscope.claims.base import Measurement
        ID, NULL, READS = "C01", "none", ("draw",)
        RULE = "supported if draw >= 0"
        def verdict(metrics, null):
            return "supported" if metrics["draw"] >= 0 else "not supported"
        def measure(model, budget):
            draw = torch.rand(1).item()
            fig = go.Figure(go.Scatter(x=[0, 1, 2], y=[1.0, 2.0, 4.0]), layout=dict(title="growth"))
            return Measurement({"draw": draw, "n_layers": 3}, key_metric="draw", evidence="fine",
                               method="drew a number", figures=[fig])
    ''',
    # raises: must become "error", the rest must still run
    "c02_fake_boom.py": '''
        ID, NULL, READS, RULE = "C02", "none", (), "never"
        def verdict(metrics, null):
            return "supported"
        def measure(model, budget):
            raise ValueError("boom: shapes differ")
    ''',
    # the model lacks what the claim needs
    "c03_fake_not_applicable.py": '''
        from mechscope.errors import NotApplicableError
        ID, NULL, READS, RULE = "C03", "none", (), "never"
        def verdict(metrics, null):
            return "supported"
        def measure(model, budget):
            raise NotApplicableError("the model has rotary positions, no W_pos")
    ''',
    # a module that cannot even be imported
    "c04_fake_broken_import.py": '''
        import mechscope.this_module_does_not_exist
        ID = "C04"
    ''',
    # breaks the contract: keeps its title in the module and has no verdict()
    "c09_fake_breaks_contract.py": '''
        ID, TITLE, NULL, READS, RULE = "C09", "a title", "none", (), "rule"
        def measure(model, budget):
            pass
    ''',
    # a careless claim: changes the weights and leaves the model in training mode
    "c06_fake_mutates.py": '''
        import torch
        from mechscope.claims.base import Measurement
        ID, NULL, READS, RULE = "C06", "none", (), "always supported"
        def verdict(metrics, null):
            return "supported"
        def measure(model, budget):
            hf = getattr(model, "hf_model", None)
            if hf is not None:
                with torch.no_grad():
                    next(hf.parameters()).add_(1.0)
                hf.train()
            return Measurement({}, key_metric="")
    ''',
    # reads its metric beside a null twin: supported only when it beats the twin
    "c07_fake_twin.py": '''
        from mechscope.claims.base import Measurement
        ID, NULL, READS = "C07", "twin", ("value",)
        RULE = "supported if value exceeds the twin's by 1"
        def verdict(metrics, null):
            return "supported" if metrics["value"] >= null["value"] + 1 else "not supported"
        def measure(model, budget):
            return Measurement({"value": float(model.value)}, key_metric="value")
    ''',
    # a claim outside the catalogue still shows up; its NaN metric gives "error", not a verdict
    "c22_fake_extra.py": '''
        """An extra claim that the catalogue does not know."""
        from mechscope.claims.base import Measurement
        ID, SLUG, TITLE, REFERENCE = "C22", "extra-claim", "An extra claim", "nobody"
        NULL, READS, RULE = "none", ("value",), "supported if value > 0"
        def verdict(metrics, null):
            return "supported" if metrics["value"] > 0 else "not supported"
        def measure(model, budget):
            return Measurement({"value": float("nan")}, key_metric="value")
    ''',
    # not a claim module (name does not match cNN_): ignored
    "helpers.py": "X = 1\n",
}

_counter = itertools.count()


@pytest.fixture
def fake_claims_package(tmp_path, monkeypatch):
    """The importable name of a fresh package holding FAKE_CLAIMS (fresh name: no import cache)."""
    name = f"mechscope_fake_claims_{next(_counter)}"
    pkg = tmp_path / name
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    for filename, source in FAKE_CLAIMS.items():
        (pkg / filename).write_text(textwrap.dedent(source))
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


@pytest.fixture(scope="session")
def planted_model():
    """A 1-layer random GPT-2 whose tokenizer vocabulary has EVIL as one token."""
    from mechscope import HookedModel
    from tests.helpers import gpt2_tokenizer, small_hf_model

    tok = gpt2_tokenizer()
    tok.add_tokens([EVIL])
    hf = small_hf_model("gpt2", n_layers=1, d_model=32, n_heads=2, n_ctx=32, vocab=len(tok))
    hf.config.name_or_path = EVIL  # the model's name, shown on the model card, is hostile too
    return HookedModel.from_hf(hf, tok, spec=f"random:{EVIL}")
