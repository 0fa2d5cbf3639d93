"""Run by test_distributed.py, alone or under `torchrun --nproc-per-node 2`: EAP-IG scores, exact
(noising and, under patching, denoising) scores, a faithfulness curve and ACDC on tiny-gpt2 IOI; rank 0 writes them to the given path."""

import json
import sys

import torch

import mechscope
from mechscope import distributed as ddp
from mechscope.circuits import CircuitSetup, acdc, attribute, faithfulness_curve
from mechscope.tasks import get_task


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    model = mechscope.load("organism:tiny-gpt2")
    task = get_task(model, "ioi", n_prompts=12, seed=0)
    out = {}
    for ablation in ("patching", "mean"):
        setup = CircuitSetup.from_task(model, task, ablation=ablation)
        ig = attribute(setup, "eap-ig", steps=3)
        out[ablation] = {"n_prompts": setup.n_prompts, "n_total": setup.n_prompts_total,
                         "eap_ig": ig.vector.tolist(), "exact": attribute(setup, "exact").vector.tolist(),
                         "curve": faithfulness_curve(setup, ig).faithfulness,
                         "acdc": acdc(setup, 0.05, objective="metric").scores.vector.tolist()}
        if ablation == "patching":
            out[ablation]["exact_denoising"] = attribute(setup, "exact-denoising").vector.tolist()
    if ddp.rank() == 0:
        with open(out_path, "w") as f:
            json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1])
