"""Turn a model spec into a HookedModel, safely.

Specs: a local HF model directory, a hub id ("gpt2", "EleutherAI/pythia-70m"), or a spec with a
registered prefix (see `mechscope.specs`), such as "organism:NAME" for a model organism shipped
inside the package (`mechscope.organisms` registers it; `mechscope.load` imports it first). Weights load through
transformers with safetensors preferred; pickled checkpoints are only read with
``torch.load(weights_only=True)`` (transformers' default); remote code runs only when
``trust_remote_code=True`` is passed.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch

from mechscope.errors import MechscopeError, ModelLoadError
from mechscope.model.devices import DTYPES, check_device_map
from mechscope.model.hooked import HookedModel
from mechscope.specs import registered_prefixes, resolve_prefixed

_PREFIX = re.compile(r"^[A-Za-z][\w-]+:(?![/\\])")   # "organism:NAME"; not "C:\\..." or "http://"
_DTYPES = {**DTYPES, "float64": torch.float64}


def _dtype(dtype) -> torch.dtype | None:
    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    try:
        return _DTYPES[str(dtype)]
    except KeyError:
        raise ModelLoadError(f"unknown dtype {dtype!r}: use one of {', '.join(_DTYPES)}") from None


def resolve_spec(spec: str) -> tuple[str, bool]:
    """(path or hub id, is_local) for a spec."""
    registered = resolve_prefixed(spec)
    if registered is not None:
        return str(registered), True
    path = Path(spec).expanduser()
    prefix = _PREFIX.match(spec)
    if prefix and not path.exists():
        raise ModelLoadError(f"no resolver is registered for {prefix.group(0)!r} specs (known: "
                             f"{registered_prefixes() or 'none'}); load with mechscope.load, which registers "
                             "'organism:', or import the package that provides the prefix")
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelLoadError(f"{spec} exists but has no config.json: point at a Hugging Face model "
                                 "directory (config.json + weights + tokenizer files)")
        return str(path), True
    if spec.startswith((".", "/", "~")) or os.sep in spec.rstrip("/").split("/", 1)[-1]:
        raise ModelLoadError(f"no model directory at {spec}: check the path")
    return spec, False


def _check_weights(path: Path) -> None:
    names = {p.name for p in path.iterdir()}
    has_safe = any(n.endswith(".safetensors") for n in names)
    has_pickle = any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    if not has_safe and not has_pickle:
        raise ModelLoadError(f"{path} has no weights (*.safetensors or pytorch_model.bin)")


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub (or $HF_ENDPOINT) answers a TCP connect within `timeout` seconds."""
    import socket
    from urllib.parse import urlparse

    url = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    try:
        with socket.create_connection((url.hostname, url.port or 443), timeout=timeout):
            return True
    except OSError:
        return False


def _offline_error(spec: str) -> ModelLoadError:
    return ModelLoadError(
        f"could not load {spec!r} from the Hugging Face hub (no connection, and not cached here). "
        f"Download it where the hub is reachable and pass the local directory instead, e.g. "
        f"mechscope.load('/path/to/{spec.split('/')[-1]}')."
    )


def _cached_locally(spec: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(spec, "config.json"), str)


def load(spec: str, device: str | torch.device | None = None, dtype=None, *,
         trust_remote_code: bool = False, tokenizer=None, local_files_only: bool | None = None,
         check_finite: bool = True, device_map: str | dict | None = None) -> HookedModel:
    """Load `spec` as a HookedModel on `device` (default: cuda if available, else cpu).

    device_map: spread the model over devices through accelerate (an optional dependency) instead of
    placing it on `device`: "auto", "balanced", "balanced_low_0", "sequential" (split at the
    architecture's _no_split_modules), or an explicit {module name: device} dict. Hooks are unchanged:
    a hook sees its activation on the device of its block. Checked before any weight loads.

    check_finite: refuse a checkpoint with a NaN or infinite weight (ModelLoadError naming the
    tensor); pass False only to study such a checkpoint on purpose (every claim then says "error").
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target, is_local = resolve_spec(str(spec))
    if is_local:
        _check_weights(Path(target))
    if local_files_only is None:
        local_files_only = is_local or os.environ.get("HF_HUB_OFFLINE", "") in {"1", "true", "yes"}
    if not is_local and not _cached_locally(target):
        if local_files_only or not hub_reachable():
            raise _offline_error(str(spec))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    kwargs = dict(trust_remote_code=trust_remote_code, local_files_only=local_files_only)
    if device_map is not None:
        device_map = check_device_map(device_map, _hf_class(target, kwargs))
        kwargs["device_map"] = device_map
    try:
        hf_model = AutoModelForCausalLM.from_pretrained(target, dtype=_dtype(dtype) or torch.float32, **kwargs)
        if tokenizer is None:
            tokenizer = AutoTokenizer.from_pretrained(target, **kwargs)
    except MechscopeError:
        raise
    except (OSError, ValueError) as err:
        text = str(err)
        if not is_local and any(s in text for s in ("connect", "resolve", "offline", "Connection",
                                                      "couldn't", "cannot find", "not a valid model")):
            raise _offline_error(str(spec)) from None
        if "trust_remote_code" in text:
            raise ModelLoadError(f"{spec!r} needs custom code from its repository; if you trust it, pass "
                                 "trust_remote_code=True") from None
        raise ModelLoadError(f"could not load {spec!r}: {text.splitlines()[0] if text else type(err).__name__}. "
                             "Is the checkpoint complete (config.json, weights, tokenizer)?") from None
    except Exception as err:  # corrupt safetensors, truncated files, ...
        raise ModelLoadError(f"could not load {spec!r}: {type(err).__name__}: {str(err).splitlines()[0][:300]}. "
                             "The checkpoint may be corrupt or truncated; re-download or re-save it.") from None
    if check_finite:
        refuse_non_finite(hf_model, str(spec))
    if device_map is None:
        hf_model.to(device)
    return HookedModel(hf_model, tokenizer, spec=str(spec))


def _hf_class(target: str, kwargs: dict) -> type | None:
    """The transformers class `target` loads as (for its _no_split_modules), without loading weights."""
    from transformers import AutoConfig, AutoModelForCausalLM

    try:
        config = AutoConfig.from_pretrained(target, **{k: v for k, v in kwargs.items() if k != "device_map"})
        return AutoModelForCausalLM._model_mapping[type(config)]
    except Exception:  # noqa: BLE001 - unknown here: from_pretrained then says what is wrong
        return None


def non_finite_weight(hf_model: torch.nn.Module) -> str | None:
    """'name (shape): n NaN/inf values' for the first parameter or buffer that is not finite, else None."""
    with torch.no_grad():
        for name, tensor in hf_model.state_dict().items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                n_bad = int((~torch.isfinite(tensor)).sum())
                return f"{name} {tuple(tensor.shape)} holds {n_bad} NaN/inf values"
    return None


def refuse_non_finite(hf_model: torch.nn.Module, spec: str) -> None:
    """Raise ModelLoadError naming the first parameter or buffer that holds NaN or ±inf."""
    problem = non_finite_weight(hf_model)
    if problem:
        raise ModelLoadError(
            f"{spec!r} has non-finite weights: {problem}. The checkpoint is corrupt or diverged in training; "
            "use another checkpoint, or pass check_finite=False to load it anyway (analyses of it will not be "
            "meaningful).")
