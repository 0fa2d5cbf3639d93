"""Run by test_fsdp.py, alone (unsharded) or under `torchrun --nproc-per-node 2` with `--shard`:
attribution patching and EAP / EAP-IG (inputs and activations) edge scores on tiny random GPT-2 and LLaMA models (IOI prompts);
rank 0 writes them, with the sizes of its parameter shards, to the given path."""

import json
import sys

import torch
from torch.distributed.tensor import DTensor

from mechscope import distributed as ddp
from mechscope.circuits import CircuitSetup, attribute
from mechscope.errors import InputError
from mechscope.model import HookedModel
from mechscope.model.sharding import is_sharded, shard_across_ranks
from mechscope.patching import attribution_patching
from mechscope.tasks import get_task
from tests.helpers import gpt2_tokenizer, small_hf_model


def local_numel(module: torch.nn.Module) -> int:
    return sum((p.to_local() if isinstance(p, DTensor) else p).numel() for p in module.parameters())


def run(arch: str, shard: bool) -> dict:
    model = HookedModel(small_hf_model(arch, n_layers=2, d_model=64, n_heads=4), gpt2_tokenizer())
    views = {"W_O": model.W_O, "W_U": model.W_U, "W_Q": model.W_Q}
    block_numel = sum(p.numel() for p in model.structure.layers.parameters())
    if shard:
        shard_across_ranks(model)
    out = {"sharded": is_sharded(model), "block_numel": block_numel,
           "local_block_numel": local_numel(model.structure.layers),
           "views_max_diff": max(float((getattr(model, k) - v).abs().max()) for k, v in views.items())}
    out["edits_refused"] = []
    for name, edit in (("fold_layer_norm", model.fold_layer_norm),
                       ("add_to_W_out", lambda: model.add_to_W_out(0, torch.zeros(model.cfg.d_mlp, model.cfg.d_model)))):
        try:
            edit().undo() if name == "fold_layer_norm" else edit()
        except InputError as err:
            out["edits_refused"].append(name if "sharded" in str(err) else str(err))
    task = get_task(model, "ioi", n_prompts=8, seed=0)
    attr = attribution_patching(model, task, sites=("resid_pre", "attn_out", "z"))
    out["attribution"] = {s: v.flatten().tolist() for s, v in attr.values.items()}
    out["clean"], out["corrupt"], out["n_prompts"] = attr.clean_metric, attr.corrupt_metric, attr.n_prompts
    setup = CircuitSetup.from_task(model, task)
    for method in ("eap", "eap-ig", "eap-ig-activations"):
        out[method] = attribute(setup, method, steps=2).vector.tolist()
    return out


def main(out_path: str, shard: bool) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    out = {arch: run(arch, shard) for arch in ("gpt2", "llama")}
    if ddp.rank() == 0:
        with open(out_path, "w") as f:
            json.dump(out, f)
    ddp.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], "--shard" in sys.argv[2:])
