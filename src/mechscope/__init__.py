"""mechscope: mechanistic interpretability for any Hugging Face causal LM.

    import mechscope
    model = mechscope.load("organism:tiny-gpt2")
    logits, cache = model.run_with_cache("When Mary and John went to the store, John gave a drink to")

The public names are imported lazily, so `import mechscope` (and the CLI's --help) does not pay
for torch and transformers until a model is needed.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__version__ = "0.1.0"
_PUBLIC = {"ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "act_name", "load"}
__all__ = ["ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "__version__", "act_name", "load"]

if TYPE_CHECKING:
    from mechscope.model import ActivationCache, HookedModel, HookPoint, ModelConfig, act_name, load


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module("mechscope.model"), name)
    raise AttributeError(f"module 'mechscope' has no attribute {name!r}")
