"""mechscope: mechanistic interpretability for any Hugging Face causal LM."""

from mechscope.model import ActivationCache, HookedModel, HookPoint, ModelConfig, act_name, load

__version__ = "0.1.0"
__all__ = ["ActivationCache", "HookPoint", "HookedModel", "ModelConfig", "__version__", "act_name", "load"]
