"""Run by test_trainer.py, alone or under `torchrun --nproc-per-node 2`: trains two SAEs, a transcoder and
a crosscoder on a fixed stream of global batches, each process taking its share, and writes the weights
(rank 0)."""

import sys

import torch
from safetensors.torch import save_file

from mechscope import distributed as ddp
from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder

GLOBAL_BATCH, D_IN, STEPS = 64, 8, 12
MIX = torch.randn(D_IN, D_IN, generator=torch.Generator().manual_seed(9))


def global_batches():
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        a = torch.randn(GLOBAL_BATCH, D_IN, generator=g) * 2 + 0.5
        yield {"a": a, "b": torch.tanh(a @ MIX)}   # "b": a transcoder's target, a crosscoder's second source


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    r, w = ddp.rank(), ddp.world_size()
    share = GLOBAL_BATCH // w
    local = ({k: v[r * share:(r + 1) * share] for k, v in b.items()} for b in global_batches())
    saes = {
        "topk": create_sae(SAEConfig(d_in=D_IN, d_sae=32, architecture="topk", k=3, hook_name="a",
                                     dead_after_tokens=128, seed=3)),
        "relu": create_sae(SAEConfig(d_in=D_IN, d_sae=32, architecture="relu_l1", hook_name="a", seed=4)),
        "transcoder": create_transcoder(TranscoderConfig(d_in=D_IN, d_sae=32, k=3, hook_name="a", output_hook_name="b",
                                                         skip_connection=True, dead_after_tokens=128, seed=5)),
        "crosscoder": create_crosscoder(CrosscoderConfig(d_in=2 * D_IN, d_sae=32, architecture="relu_l1",
                                                         sources=("a", "b"), seed=6)),
    }
    SAETrainer(saes, TrainerConfig(steps=STEPS, lr=1e-2, warmup_steps=2, log_every=1)).fit(local)
    if r == 0:
        save_file({f"{n}.{k}": v.contiguous() for n, s in saes.items() for k, v in s.state_dict().items()
                   if v.dtype != torch.bool}, out_path)
    ddp.shutdown()


if __name__ == "__main__":
    main(sys.argv[1])
