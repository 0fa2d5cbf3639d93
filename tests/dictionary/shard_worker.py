"""Run by test_sharded_topk.py, alone or under `torchrun --nproc-per-node 2`: a latent-sharded TopK SAE
(or, with --plain, the ordinary TopKSAE) trained on the same batches on every rank; rank 0 writes the
whole SAE's weights after training, the reconstruction of the first batch before it and the AuxK loss
of every step."""

import sys

import torch
from safetensors.torch import save_file

from mechscope import distributed as ddp
from mechscope.dictionary import SAEConfig, TopKSAE
from mechscope.dictionary.sharded_topk import ShardedTopKSAE
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig

BATCH, D_IN, D_SAE, K, STEPS = 64, 8, 32, 3, 12
CFG = SAEConfig(d_in=D_IN, d_sae=D_SAE, architecture="topk", k=K, hook_name="a", dead_after_tokens=64, seed=3)


def batches():
    g = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        yield {"a": torch.randn(BATCH, D_IN, generator=g) * 2 + 0.5}


def main(out_path: str, plain: bool = False) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    sae = TopKSAE(CFG) if plain else ShardedTopKSAE(CFG)
    first = next(batches())["a"]
    with torch.no_grad():
        sae.initialize_from_data(first)
        before = sae.eval()(first).reconstruction
    sae.initialized.fill_(False)
    history = SAETrainer({"sae": sae}, TrainerConfig(steps=STEPS, lr=1e-2, warmup_steps=2, log_every=1)).fit(batches())
    auxk = torch.tensor(history.metrics["sae"]["auxk_loss"])
    state = ({k: getattr(sae, k).detach() for k in ("W_enc", "W_dec", "b_enc", "b_dec", "input_scale")} if plain
             else sae.gather_state())
    if ddp.rank() == 0:
        save_file({**{k: v.contiguous() for k, v in state.items()}, "before": before.contiguous(), "auxk_loss": auxk}, out_path)
    ddp.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], plain="--plain" in sys.argv)
