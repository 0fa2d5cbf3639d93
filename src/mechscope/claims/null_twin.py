"""The null twin: the same architecture, config and tokenizer as the model, weights re-initialised.

A claim whose NULL is "twin" is measured on the model and on its twin under the same budget and
seed; its rule asks the model to clear the twin by a stated margin. The twin answers "what does
this experiment say about a network that has learned nothing?": anything the twin also shows comes
from the architecture and the method, not from training.

The weights come from the architecture's own initialisation (HF ``from_config`` runs ``post_init``,
i.e. ``_init_weights`` per module, with the config's ``initializer_range``), from a fixed seed, so
every report on the same architecture reads against the same twin.
"""

from __future__ import annotations

import copy

import torch

from mechscope.errors import ModelLoadError

NULL_TWIN_SEED = 1234


def build_null_twin(model, seed: int = NULL_TWIN_SEED):
    """A HookedModel with `model`'s config and tokenizer and freshly initialised weights.

    Same dtype and device as the model; eval mode. The model is not touched. Raises
    ModelLoadError when the model is not a HookedModel around an HF model with a config.
    """
    from transformers import AutoModelForCausalLM

    from mechscope.model.hooked import HookedModel

    hf = getattr(model, "hf_model", None)
    config = getattr(hf, "config", None)
    if config is None:
        raise ModelLoadError("the null twin needs a HookedModel around an HF model with a config; "
                             "load the model with mechscope.load")
    config = copy.deepcopy(config)
    param = next(hf.parameters())
    state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        twin = AutoModelForCausalLM.from_config(config, dtype=param.dtype)
    except Exception as err:  # noqa: BLE001 - say what failed and what to do
        raise ModelLoadError(f"could not build a re-initialised twin of {getattr(model, 'spec', 'the model')}: "
                             f"{type(err).__name__}: {err}. Run the claims without a null twin "
                             "(their verdicts then stay inconclusive) or report this model class.") from None
    finally:
        torch.random.set_rng_state(state)
    twin.to(param.device)
    spec = getattr(model, "spec", None) or config.__class__.__name__
    return HookedModel(twin, model.tokenizer, spec=f"null-twin:{spec}")
