"""Run by test_patching_ranks.py, alone or under `torchrun --nproc-per-node 2`: activation patching
grids on tiny-gpt2 IOI; rank 0 writes them to the given path."""

import json
import sys

import torch

import mechscope
from mechscope import distributed as ddp
from mechscope.patching.activation import PatchingConfig, activation_patching
from mechscope.tasks import get_task


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    model = mechscope.load("organism:tiny-gpt2")
    task = get_task(model, "ioi", n_prompts=10, seed=0)
    out = {}
    for site, config in (("resid_pre", PatchingConfig(positions=[-3, -2, -1])), ("z", PatchingConfig(direction="noise"))):
        result = activation_patching(model, task, site, config)
        out[site] = {"values": result.values.flatten().tolist(), "clean": result.clean_metric,
                     "corrupt": result.corrupt_metric, "n_prompts": result.n_prompts, "pos_labels": result.pos_labels}
    if ddp.rank() == 0:
        with open(out_path, "w") as f:
            json.dump(out, f)
    ddp.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
