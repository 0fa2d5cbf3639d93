"""The hooked model: HF modules with TransformerLens hook points (see docs/api.md)."""

from mechscope.model.cache import ActivationCache
from mechscope.model.config import ModelConfig
from mechscope.model.hooked import HookedModel
from mechscope.model.loading import load
from mechscope.model.names import HookPoint, act_name

__all__ = ["ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "act_name", "load"]
