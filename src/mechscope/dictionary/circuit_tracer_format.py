"""Read and write per-layer transcoders in circuit-tracer's format (safety-research/circuit-tracer,
`SingleLayerTranscoder.to_safetensors` / `load_transcoder_set`), so graphs can be compared across the
two libraries on the same weights (bench/bench_graph_vs_circuit_tracer.py runs circuit-tracer 0.5.0 on
files written here).

A folder holds config.yaml and one `layer_{L}.safetensors` per layer:

    W_enc [d_sae d_model]   (pre = F.linear(x, W_enc, b_enc), i.e. x @ W_enc.T + b_enc)
    W_dec [d_sae d_model], b_enc [d_sae], b_dec [d_model]
    W_skip [d_model d_model] (optional; y += x @ W_skip.T)
    activation_function.threshold [d_sae] (JumpReLU: f = pre * (pre > threshold)); none: ReLU

    config.yaml: model_kind: transcoder_set, feature_input_hook / feature_output_hook (TransformerLens hook
    names inside a block, as circuit-tracer's replacement model names them), activation (relu | jump_relu),
    scan_name, transcoders: [layer_0.safetensors, ...] (paths relative to the folder: pass them
    to circuit-tracer's load_transcoder_set as {L: folder / path}).

Mapping: relu_l1 <-> ReLU, jumprelu <-> JumpReLU, batch_topk -> JumpReLU with its one inference threshold
on every latent. Our input and output scales are folded into the weights. TopK is not written:
circuit-tracer 0.5.0's loader builds ReLU or JumpReLU only and refuses a file with a `k` entry
(load_state_dict: unexpected key), and its TopK keeps the k largest pre-activations as they are where
ours takes their ReLU; such a file from elsewhere is still read (`k`: TopK).

Input hooks: circuit-tracer's "mlp.hook_in" (the MLP's input, after the norm's weight and bias) is our
ln2.hook_normalized (and hook_mlp_in); "hook_resid_mid" is ours too. Its "ln2.hook_normalized" is *not*
ours: TransformerLens' hook_normalized is the norm's output before its weight and bias, a tensor mechscope
has no hook for, so such a set is refused. Cross-layer transcoders are not written: circuit-tracer's CLT
has ReLU / JumpReLU only, ours is TopK.
"""

from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file

from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder
from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path, write_text_atomic

CONFIG = "config.yaml"
_ACTIVATION = {"relu_l1": "relu", "jumprelu": "jump_relu", "batch_topk": "jump_relu"}
_OUR_INPUT_HOOKS = {"ln2.hook_normalized": "mlp.hook_in", "hook_mlp_in": "mlp.hook_in", "hook_resid_mid": "hook_resid_mid"}
_THEIR_INPUT_HOOKS = {"mlp.hook_in": "ln2.hook_normalized", "hook_resid_mid": "hook_resid_mid"}


@torch.no_grad()
def save_circuit_tracer(transcoders: dict[int, object], path: str | Path, scan_name: str = "mechscope") -> Path:
    """Write {layer: transcoder} (every layer 0..L-1, one architecture) as a circuit-tracer transcoder set."""
    path = Path(path)
    layers = sorted(transcoders)
    if not layers or layers != list(range(len(layers))):
        raise InputError(f"circuit-tracer needs a transcoder for every layer 0..L-1; got layers {layers}")
    archs = {tc.cfg.architecture for tc in transcoders.values()}
    if len(archs) != 1 or getattr(transcoders[0], "is_cross_layer", False):
        raise InputError(f"a circuit-tracer transcoder set has one activation; got {sorted(archs)} (and no CLTs)")
    arch = archs.pop()
    if arch not in _ACTIVATION:
        raise InputError(f"circuit-tracer 0.5.0 reads ReLU and JumpReLU transcoders only, not {arch!r} (its loader "
                         "refuses a `k` entry); train batch_topk (written as JumpReLU with its threshold), "
                         "jumprelu or relu_l1")
    site = transcoders[0].cfg.hook_name.removeprefix("blocks.0.")
    if site not in _OUR_INPUT_HOOKS:
        raise InputError(f"the transcoders read {site!r}; circuit-tracer's replacement model has a hook for "
                         f"the MLP input (ours: {sorted(_OUR_INPUT_HOOKS)}) only")
    path.mkdir(parents=True, exist_ok=True)
    for layer in layers:
        tc = transcoders[layer]
        s_in, s_out = tc.input_scale.float(), tc.output_scale.float()
        tensors = {"W_enc": (tc.W_enc.float() * s_in).T.contiguous(), "W_dec": (tc.W_dec.float() / s_out).contiguous(),
                   "b_enc": tc.b_enc.float().clone(), "b_dec": (tc.b_dec.float() / s_out).contiguous()}
        if tc.W_skip is not None:
            tensors["W_skip"] = (tc.W_skip.float() * (s_in / s_out)).T.contiguous()
        if arch == "jumprelu":
            tensors["activation_function.threshold"] = tc.log_threshold.float().exp()
        elif arch == "batch_topk":
            tensors["activation_function.threshold"] = torch.full((tc.d_sae,), float(tc.threshold))
        with atomic_path(path / f"layer_{layer}.safetensors") as tmp:
            save_file(tensors, str(tmp))
    first = transcoders[0].cfg
    config = {"model_kind": "transcoder_set", "scan_name": scan_name, "model_name": first.model_name,
              "feature_input_hook": _OUR_INPUT_HOOKS[site],
              "feature_output_hook": first.output_hook_name.removeprefix("blocks.0."),
              "activation": _ACTIVATION[arch], "transcoders": [f"layer_{layer}.safetensors" for layer in layers]}
    write_text_atomic(path / CONFIG, yaml.safe_dump(config, sort_keys=False))
    return path


@torch.no_grad()
def load_circuit_tracer(path: str | Path) -> dict[int, object]:
    """Read a circuit-tracer transcoder set folder (config.yaml + layer files): {layer: transcoder}, eval mode."""
    path = Path(path)
    if not (path / CONFIG).exists():
        raise CheckpointError(f"{path} has no {CONFIG}; a circuit-tracer transcoder set is a folder with config.yaml "
                              "and layer_{L}.safetensors")
    config = yaml.safe_load((path / CONFIG).read_text())
    if config.get("model_kind") != "transcoder_set":
        raise InputError(f"{path}: model_kind {config.get('model_kind')!r}; mechscope reads circuit-tracer's "
                         "transcoder_set (per-layer transcoders)")
    files = config.get("transcoders") or sorted((p.name for p in path.glob("layer_*.safetensors")),
                                                key=lambda n: int(n.removeprefix("layer_").split(".")[0]))
    their_site = config.get("feature_input_hook", "mlp.hook_in")
    if their_site not in _THEIR_INPUT_HOOKS:
        raise InputError(f"{path}: feature_input_hook {their_site!r}; mechscope reads transcoders on the MLP input "
                         f"({sorted(_THEIR_INPUT_HOOKS)}). TransformerLens' ln2.hook_normalized is the norm's output "
                         "before its weight and bias, which mechscope has no hook for")
    in_site = _THEIR_INPUT_HOOKS[their_site]
    out_site = config.get("feature_output_hook", "hook_mlp_out")
    out = {}
    for layer, name in enumerate(files):
        w = {k: v.float() for k, v in load_file(str(path / name)).items()}
        d_sae, d_model = w["W_enc"].shape
        if "activation_function.threshold" in w:
            arch = "jumprelu"
        elif config.get("activation") == "topk" or "k" in w:
            arch = "topk"
        else:
            arch = "relu_l1"
        k = int(w["k"]) if "k" in w else int(config.get("k") or 1)
        tc = create_transcoder(TranscoderConfig(
            d_in=d_model, d_sae=d_sae, architecture=arch, k=min(k, d_sae), normalize_activations=False,
            skip_connection="W_skip" in w, hook_name=f"blocks.{layer}.{in_site}",
            output_hook_name=f"blocks.{layer}.{out_site}", model_name=config.get("model_name") or ""))
        tc.W_enc.copy_(w["W_enc"].T)
        tc.W_dec.copy_(w["W_dec"])
        tc.b_enc.copy_(w["b_enc"])
        tc.b_dec.copy_(w["b_dec"])
        if tc.W_skip is not None:
            tc.W_skip.copy_(w["W_skip"].T)
        if arch == "jumprelu":
            tc.log_threshold.copy_(w["activation_function.threshold"].clamp_min(1e-30).log())
        tc.initialized.fill_(True)
        out[layer] = tc.eval()
    return out
