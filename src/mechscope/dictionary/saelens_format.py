"""Read and write the SAELens on-disk format: a folder with `cfg.json` + `sae_weights.safetensors`.

SAELens (v6) stores W_enc [d_in d_sae], W_dec [d_sae d_in], b_enc [d_sae], b_dec [d_in] (and
`threshold` [d_sae] for JumpReLU) with cfg.json fields d_in, d_sae, dtype, device,
architecture ("standard" | "topk" | "jumprelu" ...), apply_b_dec_to_input,
normalize_activations, reshape_activations, k (topk) and a free-form `metadata` dict
(hook_name, model_name, ...).

Mapping: relu_l1 <-> "standard", topk <-> "topk", jumprelu <-> "jumprelu"; a batch_topk SAE is
exported as "jumprelu" with its inference threshold on every latent (what SAELens does too). Our
input_scale is folded into the weights on export (W_enc*s, W_dec/s, b_dec/s), so the exported SAE
computes the same function on raw activations with normalize_activations="none". Our own
config travels in metadata["mechscope_config"] and is restored on load.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.registry import create_sae
from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path, write_json_atomic

CFG_FILENAME = "cfg.json"
WEIGHTS_FILENAME = "sae_weights.safetensors"
_TO_SAELENS = {"relu_l1": "standard", "topk": "topk", "jumprelu": "jumprelu", "batch_topk": "jumprelu"}


@torch.no_grad()
def save_saelens(sae: SparseAutoencoder, path: str | Path) -> Path:
    """Write `sae` as a SAELens folder at `path` (atomically per file); returns the folder."""
    s = float(sae.input_scale)
    tensors = {
        "W_enc": (sae.W_enc * s).float().contiguous(),
        "W_dec": (sae.W_dec / s).float().contiguous(),
        "b_enc": sae.b_enc.float().clone(),
        "b_dec": (sae.b_dec / s).float().clone(),
    }
    arch = sae.cfg.architecture
    cfg = {
        "d_in": sae.d_in, "d_sae": sae.d_sae, "dtype": "float32", "device": "cpu",
        "apply_b_dec_to_input": True, "normalize_activations": "none", "reshape_activations": "none",
        "architecture": _TO_SAELENS[arch],
        "metadata": {
            "hook_name": sae.cfg.hook_name, "model_name": sae.cfg.model_name,
            "mechscope_architecture": arch, "mechscope_config": sae.cfg.to_dict(),
        },
    }
    if arch == "topk":
        cfg["k"] = sae.cfg.k
        cfg["rescale_acts_by_decoder_norm"] = False
    if arch == "jumprelu":
        tensors["threshold"] = sae.threshold.float().clone()
    if arch == "batch_topk":
        tensors["threshold"] = torch.full((sae.d_sae,), float(sae.threshold))
    return write_saelens_folder(path, tensors, cfg)


def write_saelens_folder(path: str | Path, tensors: dict, cfg: dict) -> Path:
    """Write {name: tensor} and cfg.json as a SAELens folder (each file atomically); returns the folder."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    with atomic_path(path / WEIGHTS_FILENAME) as tmp:
        save_file(tensors, str(tmp))
    write_json_atomic(path / CFG_FILENAME, cfg)
    return path


def read_saelens_folder(path: str | Path) -> tuple[dict, dict]:
    """(cfg.json as a dict, {name: float32 tensor}) of a SAELens folder."""
    path = Path(path)
    if not (path / CFG_FILENAME).exists() or not (path / WEIGHTS_FILENAME).exists():
        raise CheckpointError(f"{path} is not a SAELens folder: it needs {CFG_FILENAME} and {WEIGHTS_FILENAME}")
    cfg = json.loads((path / CFG_FILENAME).read_text())
    return cfg, {k: v.float() for k, v in load_file(str(path / WEIGHTS_FILENAME)).items()}


@torch.no_grad()
def load_saelens(path: str | Path) -> SparseAutoencoder:
    """Load a SAELens folder (ours or SAELens's) as a mechscope SAE ready for inference."""
    cfg, weights = read_saelens_folder(path)
    metadata = cfg.get("metadata") or {}
    arch = _architecture(cfg, metadata)
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise InputError(f"{path}: normalize_activations={cfg['normalize_activations']!r} is not supported; "
                         "fold the normalisation into the weights in SAELens first (sae.fold_activation_norm_scaling_factor)")
    if cfg.get("reshape_activations", "none") not in ("none", None):
        raise InputError(f"{path}: reshape_activations={cfg['reshape_activations']!r} (hook_z SAEs) is not supported; "
                         "flatten heads yourself and load with reshape_activations='none'")
    ours = dict(metadata.get("mechscope_config") or {})
    ours.update(d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]), architecture=arch,
                hook_name=metadata.get("hook_name") or cfg.get("hook_name") or ours.get("hook_name", ""),
                model_name=metadata.get("model_name") or cfg.get("model_name") or ours.get("model_name", ""))
    if "k" in cfg:
        ours["k"] = int(cfg["k"])
    norms = weights["W_dec"].norm(dim=-1)
    ours["normalize_decoder"] = bool(torch.allclose(norms, torch.ones_like(norms), atol=1e-4))
    ours["normalize_activations"] = False
    sae = create_sae(SAEConfig.from_dict(ours))
    b_enc = weights["b_enc"]
    if not cfg.get("apply_b_dec_to_input", True):  # x W + b = (x - b_dec) W + (b + b_dec W)
        b_enc = b_enc + weights["b_dec"] @ weights["W_enc"]
    sae.W_enc.copy_(weights["W_enc"])
    sae.W_dec.copy_(weights["W_dec"])
    sae.b_enc.copy_(b_enc)
    sae.b_dec.copy_(weights["b_dec"])
    load_threshold(sae, weights)
    sae.initialized.fill_(True)
    return sae.eval()


def load_threshold(sae, weights: dict) -> None:
    """Set a JumpReLU's per-latent or a BatchTopK's single threshold from a SAELens `threshold` [d_sae]."""
    if sae.cfg.architecture == "jumprelu":
        sae.log_threshold.copy_(weights["threshold"].clamp_min(1e-30).log())
    elif sae.cfg.architecture == "batch_topk":
        sae.threshold.fill_(float(weights["threshold"][0]))
        sae.threshold_set.fill_(True)


def _architecture(cfg: dict, metadata: dict) -> str:
    theirs = cfg.get("architecture", "standard")
    if theirs == "jumprelu" and metadata.get("mechscope_architecture") == "batch_topk":
        return "batch_topk"
    mapping = {"standard": "relu_l1", "topk": "topk", "jumprelu": "jumprelu"}
    if theirs not in mapping:
        raise InputError(f"SAELens architecture {theirs!r} is not supported; mechscope reads {sorted(mapping)}")
    if theirs == "topk" and cfg.get("rescale_acts_by_decoder_norm"):
        raise InputError("TopK SAEs with rescale_acts_by_decoder_norm=True are not supported; fold the decoder norms first")
    return mapping[theirs]

