"""The circuit-tracer side of bench_graph_vs_circuit_tracer.py; runs in circuit-tracer's own venv.

circuit-tracer 0.5.0 pins transformers<=4.57.3, so it cannot share mechscope's process. This script
imports only circuit-tracer, TransformerLens, transformers and torch, and talks to the driver through
files in one folder (the driver writes all of it):

    model/        a GPT-2 Hugging Face folder (config.json, model.safetensors)
    tokenizer/    tokenizer.json (+ the BOS / EOS strings in request.json)
    transcoders/  a circuit-tracer transcoder set (config.yaml, layer_{L}.safetensors)
    request.json  {"tokens": [...], "batch_size", "max_feature_nodes", "max_n_logits",
                   "desired_logit_prob", "repeats", "special_tokens": {...}}

and it writes graph.safetensors (adjacency, active_features, selected_features, activation_values,
logit_probabilities, logit_tokens, clean_logits) and graph.json (scores, wall and CPU seconds per repeat,
versions).

No model hub: the model is a TransformerLensReplacementModel built from a HookedTransformerConfig written
out from the HF config, with the HF weights converted by TransformerLens's own GPT-2 converter, and
loaded unfolded (fold_ln, centring, value-bias folding all off: the weights as they are, as
circuit-tracer's from_pretrained_and_transformers loads them).
"""

from __future__ import annotations

import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import torch


def build_model(folder: Path, request: dict):
    import yaml
    from circuit_tracer.replacement_model.replacement_model_transformerlens import (
        TransformerLensReplacementModel,
    )
    from circuit_tracer.utils.hf_utils import load_transcoders
    from transformer_lens import HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
    from transformers import GPT2LMHeadModel, PreTrainedTokenizerFast

    hf = GPT2LMHeadModel.from_pretrained(folder / "model", torch_dtype=torch.float32).eval()
    c = hf.config
    cfg = HookedTransformerConfig(
        d_model=c.n_embd, d_head=c.n_embd // c.n_head, n_heads=c.n_head, d_mlp=c.n_inner or 4 * c.n_embd,
        n_layers=c.n_layer, n_ctx=c.n_positions, eps=c.layer_norm_epsilon, d_vocab=c.vocab_size,
        act_fn=c.activation_function, normalization_type="LN", positional_embedding_type="standard",
        original_architecture="GPT2LMHeadModel", model_name="mechscope-gpt2", device="cpu", dtype=torch.float32,
        default_prepend_bos=False)
    # saved and reloaded in this transformers' own format: TransformerLens reloads a tokenizer by its path
    PreTrainedTokenizerFast(tokenizer_file=str(folder / "tokenizer" / "tokenizer.json"),
                            **request["special_tokens"]).save_pretrained(folder / "tokenizer_v4")
    tokenizer = PreTrainedTokenizerFast.from_pretrained(folder / "tokenizer_v4")
    config = yaml.safe_load((folder / "transcoders" / "config.yaml").read_text())
    config["transcoders"] = [str(folder / "transcoders" / p) for p in config["transcoders"]]
    config["scan"] = config.get("scan_name", "mechscope")
    transcoders = load_transcoders(config, device=torch.device("cpu"), dtype=torch.float32,
                                   lazy_encoder=False, lazy_decoder=False)
    model = TransformerLensReplacementModel(cfg, tokenizer=tokenizer)
    model.load_and_process_state_dict(convert_gpt2_weights(hf, cfg), fold_ln=False, center_writing_weights=False,
                                      center_unembed=False, fold_value_biases=False)
    model._configure_replacement_model(transcoders)      # what from_pretrained_and_transcoders does after loading
    return model


def main() -> None:
    folder = Path(sys.argv[1])
    request = json.loads((folder / "request.json").read_text())
    torch.set_num_threads(int(request.get("threads", 1)))
    from circuit_tracer import attribute
    from circuit_tracer.graph import compute_graph_scores

    model = build_model(folder, request)
    tokens = torch.tensor(request["tokens"], dtype=torch.long)
    with torch.no_grad():
        clean_logits = model(tokens[None])[0, -1].float()
    seconds, cpu_seconds, graph = [], [], None
    for _ in range(int(request.get("repeats", 1))):
        start, cpu = time.perf_counter(), time.process_time()
        graph = attribute(tokens, model, max_n_logits=request["max_n_logits"],
                          desired_logit_prob=request["desired_logit_prob"], batch_size=request["batch_size"],
                          max_feature_nodes=request["max_feature_nodes"])
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu)
    replacement, completeness = compute_graph_scores(graph)
    from safetensors.torch import save_file

    save_file({"adjacency": graph.adjacency_matrix.float().contiguous(),
               "active_features": graph.active_features.long().contiguous(),
               "selected_features": graph.selected_features.long().contiguous(),
               "activation_values": graph.activation_values.float().contiguous(),
               "logit_probabilities": graph.logit_probabilities.float().contiguous(),
               "logit_tokens": graph.logit_token_ids.long().contiguous(),
               "clean_logits": clean_logits.contiguous()}, str(folder / "graph.safetensors"))
    (folder / "graph.json").write_text(json.dumps({
        "replacement_score": replacement, "completeness_score": completeness, "seconds": seconds, "cpu_seconds": cpu_seconds,
        "input_tokens": graph.input_tokens.tolist(), "torch_threads": torch.get_num_threads(),
        "versions": {name: version(name) for name in ("circuit-tracer", "transformer-lens", "transformers", "torch")}}, indent=2))


if __name__ == "__main__":
    main()
