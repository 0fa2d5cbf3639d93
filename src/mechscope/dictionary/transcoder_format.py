"""Read and write transcoders in SAELens's format (cfg.json + sae_weights.safetensors).

SAELens (v6) has four transcoder architectures: "transcoder" (ReLU), "skip_transcoder",
"jumprelu_transcoder", "jumprelu_skip_transcoder", with W_enc [d_in d_sae], b_enc [d_sae],
W_dec [d_sae d_out], b_dec [d_out] (the output bias), W_skip [d_out d_in] (y += x @ W_skip.T),
threshold [d_sae], and cfg fields d_in, d_out, hook_name, hook_name_out, apply_b_dec_to_input=False.

Mapping: relu_l1 <-> transcoder, jumprelu <-> jumprelu_transcoder (each with "_skip" when there is a
skip connection); batch_topk is written as a JumpReLU transcoder with its one inference threshold on
every latent. A TopK transcoder has no SAELens form (saving one raises). Our input and output scales
are folded into the weights, so the file computes the same function on raw activations.
"""

from __future__ import annotations

from pathlib import Path

import torch

from mechscope.dictionary.saelens_format import load_threshold, read_saelens_folder, write_saelens_folder
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder
from mechscope.errors import InputError

_BASE = {"relu_l1": "transcoder", "jumprelu": "jumprelu_transcoder", "batch_topk": "jumprelu_transcoder"}


@torch.no_grad()
def save_saelens_transcoder(tc, path: str | Path) -> Path:
    """Write transcoder `tc` as a SAELens transcoder folder; returns the folder."""
    arch = tc.cfg.architecture
    if arch not in _BASE:
        raise InputError(f"SAELens has no {arch} transcoder; train a relu_l1, jumprelu or batch_topk transcoder "
                         "to export it, or keep it as a mechscope checkpoint (torch.save of state_dict)")
    s_in, s_out = float(tc.input_scale), float(tc.output_scale)
    tensors = {"W_enc": (tc.W_enc * s_in).float().contiguous(), "b_enc": tc.b_enc.float().clone(),
               "W_dec": (tc.W_dec / s_out).float().contiguous(), "b_dec": (tc.b_dec / s_out).float().clone()}
    if tc.W_skip is not None:
        tensors["W_skip"] = (tc.W_skip * (s_in / s_out)).T.float().contiguous()
    if arch == "jumprelu":
        tensors["threshold"] = tc.threshold.float().clone()
    elif arch == "batch_topk":
        tensors["threshold"] = torch.full((tc.d_sae,), float(tc.threshold))
    theirs = _BASE[arch]
    if tc.W_skip is not None:
        theirs = theirs.replace("transcoder", "skip_transcoder")
    cfg = {"architecture": theirs, "d_in": tc.d_in, "d_out": tc.d_in, "d_sae": tc.d_sae, "dtype": "float32",
           "device": "cpu", "apply_b_dec_to_input": False, "normalize_activations": "none",
           "reshape_activations": "none",
           "metadata": {"hook_name": tc.cfg.hook_name, "hook_name_out": tc.cfg.output_hook_name,
                        "model_name": tc.cfg.model_name, "mechscope_architecture": arch,
                        "mechscope_config": tc.cfg.to_dict()}}
    return write_saelens_folder(path, tensors, cfg)


@torch.no_grad()
def load_saelens_transcoder(path: str | Path):
    """Load a SAELens transcoder folder (ours or SAELens's) as a mechscope transcoder, in eval mode."""
    cfg, w = read_saelens_folder(path)
    meta = cfg.get("metadata") or {}
    theirs = cfg.get("architecture", "")
    by_name = {"transcoder": "relu_l1", "skip_transcoder": "relu_l1",
               "jumprelu_transcoder": "jumprelu", "jumprelu_skip_transcoder": "jumprelu"}
    if theirs not in by_name:
        raise InputError(f"{path}: architecture {theirs!r} is not a transcoder mechscope reads ({sorted(by_name)})")
    if cfg.get("normalize_activations", "none") not in ("none", None):
        raise InputError(f"{path}: normalize_activations={cfg['normalize_activations']!r}; fold it into the weights first")
    if int(cfg.get("d_out", cfg["d_in"])) != int(cfg["d_in"]):
        raise InputError(f"{path}: d_in {cfg['d_in']} != d_out {cfg['d_out']}; mechscope transcoders map d_model to d_model")
    arch = by_name[theirs]
    if arch == "jumprelu" and meta.get("mechscope_architecture") == "batch_topk":
        arch = "batch_topk"
    ours = dict(meta.get("mechscope_config") or {})
    ours.update(d_in=int(cfg["d_in"]), d_sae=int(cfg["d_sae"]), architecture=arch, normalize_activations=False,
                skip_connection="W_skip" in w,
                hook_name=meta.get("hook_name") or cfg.get("hook_name") or ours.get("hook_name", ""),
                output_hook_name=meta.get("hook_name_out") or cfg.get("hook_name_out") or ours.get("output_hook_name", ""))
    if not ours["output_hook_name"]:
        ours["output_hook_name"] = "unknown"
    tc = create_transcoder(TranscoderConfig.from_dict(ours))
    tc.W_enc.copy_(w["W_enc"])
    tc.W_dec.copy_(w["W_dec"])
    tc.b_enc.copy_(w["b_enc"])
    tc.b_dec.copy_(w["b_dec"])
    if tc.W_skip is not None:
        tc.W_skip.copy_(w["W_skip"].T)
    load_threshold(tc, w)
    tc.initialized.fill_(True)
    return tc.eval()


def save_transcoders(transcoders: dict[int, object], path: str | Path) -> Path:
    """Write one transcoder per layer, any architecture, as `path/L{layer}/` (safetensors + cfg.json)."""
    path = Path(path)
    for layer, tc in transcoders.items():
        _write_state(tc, path / f"L{layer}", "mechscope_transcoder")
    return path


def load_transcoders(path: str | Path):
    """Read what `save_transcoders` wrote: {layer: transcoder} in eval mode; or, when `path` is one saved
    cross-layer transcoder (`mechscope sae train --kind clt`), that CLT; or a circuit-tracer transcoder
    set (a folder with config.yaml, see circuit_tracer_format.py)."""
    path = Path(path)
    if (path / "config.yaml").exists():
        from mechscope.dictionary.circuit_tracer_format import load_circuit_tracer

        return load_circuit_tracer(path)
    if (path / "cfg.json").exists():
        d = load_dictionary(path)
        if getattr(d, "is_cross_layer", False):
            return d
        raise InputError(f"{path} is one dictionary but not a cross-layer transcoder; pass the folder holding L0, L1, ...")
    folders = sorted(p for p in path.glob("L*") if p.is_dir() and p.name[1:].isdigit())
    if not folders:
        raise InputError(f"{path} holds no transcoder folders L0, L1, ...; write them with save_transcoders "
                         "(or `mechscope graph ... --save-transcoders DIR`)")
    out = {int(folder.name[1:]): load_dictionary(folder) for folder in folders}
    if not all(getattr(tc, "is_transcoder", False) for tc in out.values()):
        raise InputError(f"{path} holds folders that are not transcoders")
    return out


def _write_state(d, path: Path, key: str) -> Path:
    tensors = {k: v.detach().float().contiguous() if v.is_floating_point() else v.detach().contiguous()
               for k, v in d.state_dict().items()}
    return write_saelens_folder(path, tensors, {key: d.cfg.to_dict()})


def save_dictionary(d, path: str | Path) -> Path:
    """Save an SAE, transcoder, cross-layer transcoder or crosscoder: the SAELens format where it has one, else mechscope's
    (safetensors state + cfg.json, read back by `load_dictionary`)."""
    from mechscope.dictionary.saelens_format import save_saelens

    if getattr(d, "is_transcoder", False):
        if d.cfg.architecture in _BASE:
            return save_saelens_transcoder(d, path)
    elif not hasattr(d.cfg, "sources"):
        return save_saelens(d, path)
    key = ("mechscope_clt" if getattr(d, "is_cross_layer", False) else
           "mechscope_transcoder" if getattr(d, "is_transcoder", False) else "mechscope_crosscoder")
    return _write_state(d, Path(path), key)


def load_dictionary(path: str | Path):
    """Read what `save_dictionary` wrote (any kind), in eval mode."""
    from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder
    from mechscope.dictionary.saelens_format import load_saelens

    cfg, tensors = read_saelens_folder(path)
    from mechscope.dictionary.clt import CLTConfig, create_clt

    if "mechscope_transcoder" in cfg or "mechscope_crosscoder" in cfg or "mechscope_clt" in cfg:
        if "mechscope_clt" in cfg:
            d = create_clt(CLTConfig.from_dict(cfg["mechscope_clt"]))
        elif "mechscope_transcoder" in cfg:
            d = create_transcoder(TranscoderConfig.from_dict(cfg["mechscope_transcoder"]))
        else:
            d = create_crosscoder(CrosscoderConfig.from_dict(cfg["mechscope_crosscoder"]))
        state = d.state_dict()
        d.load_state_dict({k: tensors[k].to(state[k].dtype) for k in state})
        return d.eval()
    if "transcoder" in str(cfg.get("architecture", "")):
        return load_saelens_transcoder(path)
    return load_saelens(path)
