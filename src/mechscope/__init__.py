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
_PUBLIC = {"ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "act_name"}
_MODEL_PROVIDERS = ("mechscope.organisms",)   # packages that register model-spec prefixes ("organism:")
__all__ = ["ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "__version__", "act_name", "load"]

if TYPE_CHECKING:
    from mechscope.model import ActivationCache, HookedModel, HookPoint, ModelConfig, act_name


def load(spec, *args, **kwargs):
    """Load a model spec as a HookedModel: a local HF directory, a hub id, or "organism:NAME".

    `mechscope.model.load` with the spec prefixes of the packages that ship models registered
    first; the arguments are those of `mechscope.model.loading.load` (device, dtype, ...).
    """
    for provider in _MODEL_PROVIDERS:
        importlib.import_module(provider)
    return importlib.import_module("mechscope.model").load(spec, *args, **kwargs)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module("mechscope.model"), name)
    raise AttributeError(f"module 'mechscope' has no attribute {name!r}")
