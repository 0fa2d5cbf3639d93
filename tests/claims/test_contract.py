"""Every claim module obeys the contract of claims/base.py (CONTRACTS.md A)."""

from __future__ import annotations

import types

import pytest

from mechscope.claims.base import NULL_NONE, NULL_TWIN
from mechscope.claims.catalogue import BY_ID
from mechscope.claims.registry import contract_problem, discover

MODULES = [spec for spec in discover() if spec.module is not None or spec.import_error is not None]


@pytest.mark.parametrize("spec", MODULES, ids=[s.id for s in MODULES])
def test_claim_module_obeys_the_contract(spec):
    assert spec.import_error is None, spec.import_error
    module = spec.module
    assert contract_problem(module, spec.id) is None
    assert spec.id in BY_ID, "title, slug and reference live in claims/catalogue.py"
    assert module.NULL in (NULL_TWIN, NULL_NONE) or len(module.NULL.split()) >= 4, "NULL: twin, none or a sentence"
    assert module.READS, "a rule that reads no number cannot be checked for finiteness"
    assert (module.__doc__ or "").strip(), "the docstring states the experiment, its null and its cost"


TWIN_MODULES = [spec for spec in MODULES if spec.module is not None and spec.module.NULL == NULL_TWIN]


@pytest.mark.parametrize("spec", TWIN_MODULES, ids=[s.id for s in TWIN_MODULES])
def test_null_reads_are_what_the_rule_reads_from_the_null(spec):
    """The twin is measured for NULL_READS only (and checked for finiteness only there), so every key
    verdict() subscripts on `null` must be in NULL_READS, and NULL_READS must hold nothing it never reads."""
    import ast
    import inspect

    from mechscope.claims.base import null_reads_of

    tree = ast.parse(inspect.getsource(spec.module.verdict))
    read = {node.slice.value for node in ast.walk(tree)
            if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "null"
            and isinstance(node.slice, ast.Constant)}
    dynamic = [node for node in ast.walk(tree) if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name)
               and node.value.id == "null" and not isinstance(node.slice, ast.Constant)]
    assert not dynamic, "verdict() reads the null with a computed key: NULL_READS cannot be checked"
    passed_on = any(isinstance(arg, ast.Name) and arg.id == "null"
                    for node in ast.walk(tree) if isinstance(node, ast.Call) for arg in node.args)
    if passed_on:   # a helper reads it: the twin must give everything the model gives
        assert null_reads_of(spec.module) == spec.module.READS
    else:
        assert read == set(null_reads_of(spec.module))


def test_contract_problems_are_named():
    def module(**attrs):
        m = types.ModuleType("c02_x")
        m.__dict__.update(dict(ID="C02", RULE="r", NULL="twin", READS=("x",), measure=lambda m, b: None,
                               verdict=lambda m, n: "supported"))
        m.__dict__.update(attrs)
        return m

    assert contract_problem(module(), "C02") is None
    assert "ID must be 'C02'" in contract_problem(module(ID="C03"), "C02")
    assert "verdict" in contract_problem(module(verdict=None), "C02")
    assert "READS" in contract_problem(module(READS=["x"]), "C02")
    assert "TITLE belongs in claims/catalogue.py" in contract_problem(module(TITLE="t"), "C02")
    assert "NULL_READS" in contract_problem(module(NULL_READS=("y",)), "C02")
    assert "NULL_READS" in contract_problem(module(NULL_READS=["x"]), "C02")
    assert contract_problem(module(NULL_READS=()), "C02") is None
    assert "must say something" in contract_problem(module(NULL=" "), "C02")


def test_catalogue_titles_and_references_follow_claims_md():
    """Title, slug and reference live once, in claims/catalogue.py, and say what CLAIMS.md says."""
    import re

    from mechscope.claims.catalogue import CATALOGUE
    from tests.helpers import SHARED

    claims_md = SHARED / "CLAIMS.md"
    if not claims_md.exists():
        pytest.skip(f"{claims_md} not found")
    rows = re.findall(r"^\| (C\d\d) ([a-z0-9-]+) \| (.*?) \| (.*?) \| (.*?) \| (.*?) \|$", claims_md.read_text(),
                      flags=re.M)

    def norm(text):
        return re.sub(r"[.\s]+$", "", text.replace("–", "-").replace(" ", ""))

    assert len(rows) == len(CATALOGUE) == 21
    for entry, (cid, slug, title, _, _, reference) in zip(CATALOGUE, rows, strict=True):
        assert (entry.id, entry.slug) == (cid, slug)
        assert norm(entry.title) == norm(title), entry.id
        assert norm(entry.reference).replace(",", "") == norm(reference).replace(",", ""), entry.id
