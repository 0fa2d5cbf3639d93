"""Run by test_trainer.py, alone or under `torchrun --nproc-per-node 2`: trains two SAEs on a fixed
stream of global batches, each process taking its share, and writes the weights (rank 0)."""

import sys

import torch
from safetensors.torch import save_file

from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary import distributed as ddp
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig

GLOBAL_BATCH, D_IN, STEPS = 64, 8, 12


def global_batches():
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        yield {"a": torch.randn(GLOBAL_BATCH, D_IN, generator=g) * 2 + 0.5}


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    r, w = ddp.rank(), ddp.world_size()
    share = GLOBAL_BATCH // w
    local = ({"a": b["a"][r * share:(r + 1) * share]} for b in global_batches())
    saes = {
        "topk": create_sae(SAEConfig(d_in=D_IN, d_sae=32, architecture="topk", k=3, hook_name="a",
                                     dead_after_tokens=128, seed=3)),
        "relu": create_sae(SAEConfig(d_in=D_IN, d_sae=32, architecture="relu_l1", hook_name="a", seed=4)),
    }
    SAETrainer(saes, TrainerConfig(steps=STEPS, lr=1e-2, warmup_steps=2, log_every=1)).fit(local)
    if r == 0:
        save_file({f"{n}.{k}": v.contiguous() for n, s in saes.items() for k, v in s.state_dict().items()
                   if v.dtype != torch.bool}, out_path)
    ddp.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
