"""Spec prefixes are registered by the packages that ship models; the model core knows none of them."""

from __future__ import annotations

import subprocess
import sys

import pytest

import mechscope.organisms
from mechscope.specs import register_spec_prefix, resolve_prefixed


def test_organisms_register_their_prefix_once():
    assert resolve_prefixed("organism:tiny-gpt2") == mechscope.organisms.shipped_path("tiny-gpt2")
    assert resolve_prefixed("gpt2") is None
    register_spec_prefix("organism:", mechscope.organisms.shipped_path)          # same resolver: fine
    with pytest.raises(ValueError, match="already resolved"):
        register_spec_prefix("organism:", lambda name: name)


def test_model_core_alone_names_the_missing_resolver():
    """Without mechscope.organisms imported, mechscope.model.load refuses organism: specs clearly;
    mechscope.load imports it and loads."""
    code = ("import sys, mechscope.model as m\n"
            "try:\n    m.load('organism:tiny-gpt2')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
            "assert 'mechscope.organisms' not in sys.modules\n"
            "import mechscope\nprint(mechscope.load('organism:tiny-gpt2', device='cpu').cfg.n_layers)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert "ModelLoadError no resolver is registered for 'organism:' specs" in out
    assert out.strip().endswith("4")
