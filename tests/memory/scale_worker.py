"""Run by test_scale_out.py alone or under `torchrun --nproc-per-node 2` (gloo): E[kkᵀ] and a tracing
summary of 6 organism facts, written by rank 0."""

import sys

import torch
from safetensors.torch import save_file

import mechscope
from mechscope import distributed as ddp
from mechscope.memory.covariance import key_covariance
from mechscope.memory.facts import known_facts
from mechscope.memory.trace_summary import trace_facts
from mechscope.memory.tracing import TraceConfig


def main(out_path: str) -> None:
    torch.set_num_threads(1)
    ddp.init_from_env("gloo")
    model = mechscope.load("organism:tiny-gpt2")
    cov = key_covariance(model, [1, 2], n_tokens=768, seq_len=32, batch_size=4)
    summary = trace_facts(model, known_facts(model)[:6], TraceConfig(n_samples=3))
    if ddp.rank() == 0:
        save_file({"cov1": cov[1].second_moment, "cov2": cov[2].second_moment,
                   **{f"effects.{k}": v.contiguous() for k, v in summary.effects.items()},
                   "p": torch.tensor([summary.p_clean, summary.p_corrupt, float(summary.n_facts)])}, out_path)


if __name__ == "__main__":
    main(sys.argv[1])
