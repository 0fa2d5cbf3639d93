"""SAE training throughput against SAELens, and activation harvesting against a plain HF forward.

Needs the `bench` extra (sae-lens) for the SAELens side; without it only our numbers are written.

    python bench/bench_sae.py --out bench/results/bench_sae.json            # TopK, d_in 768, 16x, k 32

Training: both libraries take the same activation batches [batch d_in] (seeded random data, so
no model is involved) and the same hyperparameters (TopK, Adam, lr, grad-norm clip 1.0, no dead
latents so AuxK is off in both); we time whole optimiser steps including each library's
per-step bookkeeping (dead-latent counters, decoder normalisation) and report tokens/s.

Harvest: a random-init GPT-2-architecture model; the time to harvest a residual hook into a
disk store (`harvest_activations`) vs a plain `hf_model(tokens)` forward over the same tokens.
Reported for the last layer and for the middle layer (where the harvest stops early), against
the full HF forward (with the LM head) and against the HF transformer body alone (no LM head,
which is all a last-layer harvest needs: the strictest baseline).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch


def ours_step_fn(d_in: int, d_sae: int, k: int, lr: float):
    from mechscope.dictionary import SAEConfig, create_sae
    from mechscope.dictionary.trainer import SAETrainer, TrainerConfig

    sae = create_sae(SAEConfig(d_in=d_in, d_sae=d_sae, architecture="topk", k=k, b_dec_init="mean"))
    trainer = SAETrainer(sae, TrainerConfig(steps=10**9, lr=lr, warmup_steps=0, decay_fraction=0.0,
                                            max_grad_norm=1.0, show_progress=False))
    return trainer.train_step


def saelens_step_fn(d_in: int, d_sae: int, k: int, lr: float, sparse: bool):
    from sae_lens.saes.sae import TrainStepInput
    from sae_lens.saes.topk_sae import TopKTrainingSAE, TopKTrainingSAEConfig

    sae = TopKTrainingSAE(TopKTrainingSAEConfig(d_in=d_in, d_sae=d_sae, k=k, use_sparse_activations=sparse,
                                                dtype="float32", device="cpu"))
    opt = torch.optim.Adam(sae.parameters(), lr=lr)
    since_fired = torch.zeros(d_sae)
    state = {"step": 0}

    def step(x):  # the body of sae_lens.training.sae_trainer.SAETrainer._train_step
        sae.train()
        out = sae.training_forward_pass(TrainStepInput(sae_in=x, coefficients={}, dead_neuron_mask=since_fired > 10**9,
                                                       n_training_steps=state["step"], is_logging_step=False))
        with torch.no_grad():
            did_fire = out.feature_acts.bool().float().sum(-2).bool()
            if did_fire.is_sparse:
                did_fire = did_fire.to_dense()
            since_fired.add_(1)
            since_fired[did_fire] = 0
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(sae.parameters(), 1.0)
        opt.step()
        opt.zero_grad()
        state["step"] += 1

    return step


def bench_training(args) -> dict:
    d_sae = args.d_in * args.expansion
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(args.batch, args.d_in, generator=gen) for _ in range(args.steps + args.warmup)]
    out = {"setup": {"architecture": "topk", "d_in": args.d_in, "d_sae": d_sae, "k": args.k, "batch": args.batch,
                     "steps_timed": args.steps, "threads": torch.get_num_threads()}}
    runners = {"mechscope": ours_step_fn(args.d_in, d_sae, args.k, args.lr)}
    try:
        import sae_lens

        out["setup"]["sae_lens_version"] = sae_lens.__version__
        runners["sae_lens"] = saelens_step_fn(args.d_in, d_sae, args.k, args.lr, sparse=False)
        runners["sae_lens_sparse_activations"] = saelens_step_fn(args.d_in, d_sae, args.k, args.lr, sparse=True)
    except ImportError:
        out["note"] = "sae_lens not installed: install the `bench` extra for the side-by-side numbers"
    times: dict[str, list[float]] = {name: [] for name in runners}
    for i, x in enumerate(batches):  # interleaved step by step, so machine load hits every runner alike
        for name, step in list(runners.items()):
            t = time.perf_counter()
            try:
                step(x)
            except Exception as err:  # a peer option that fails on this version is reported, not fatal
                out[name] = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
                del runners[name]
                continue
            if i >= args.warmup:
                times[name].append(time.perf_counter() - t)
    for name in runners:
        med = statistics.median(times[name])
        out[name] = {"median_step_s": med, "tokens_per_s": args.batch / med}
    if "tokens_per_s" in out.get("sae_lens", {}):
        out["speedup_vs_sae_lens"] = out["mechscope"]["tokens_per_s"] / out["sae_lens"]["tokens_per_s"]
    if "tokens_per_s" in out.get("sae_lens_sparse_activations", {}):
        out["speedup_vs_sae_lens_sparse_activations"] = (
            out["mechscope"]["tokens_per_s"] / out["sae_lens_sparse_activations"]["tokens_per_s"])
    return out


def bench_harvest(args) -> dict:
    from transformers import GPT2Config, GPT2LMHeadModel

    from mechscope.data.activation_store import harvest_activations
    from mechscope.model import HookedModel

    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(n_layer=args.layers, n_embd=args.d_model, n_head=max(1, args.d_model // 64),
                                    vocab_size=args.vocab, n_positions=args.seq)).eval()
    model = HookedModel.from_hf(hf, tokenizer=None, spec="random:gpt2-bench")
    tokens = torch.randint(0, args.vocab, (args.harvest_sequences, args.seq), generator=torch.Generator().manual_seed(1))
    bs = args.harvest_batch

    def plain():
        with torch.no_grad():
            for b in tokens.split(bs):
                hf(b)

    def plain_body():  # the transformer without the LM head: all a last-layer harvest needs
        with torch.no_grad():
            for b in tokens.split(bs):
                hf.base_model(b)

    def harvest(hook):
        with tempfile.TemporaryDirectory() as tmp:
            harvest_activations(model, tokens, [hook], Path(tmp), batch_size=bs, show_progress=False)

    out = {"setup": {"model": f"random-init GPT-2 {args.layers} layers d_model {args.d_model}", "tokens": tokens.numel(),
                     "batch": bs, "seq": args.seq}}
    last = f"blocks.{args.layers - 1}.hook_resid_post"
    mid = f"blocks.{args.layers // 2 - 1}.hook_resid_post"
    runs = {"plain_hf_forward": plain, "plain_hf_body_forward": plain_body, "harvest_last_layer": lambda: harvest(last), "harvest_middle_layer": lambda: harvest(mid)}
    times = {name: [] for name in runs}
    plain()  # warm up
    for _ in range(args.repeats):  # interleaved, so load changes hit all three alike
        for name, fn in runs.items():
            t = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t)
    for name, ts in times.items():
        out[name] = {"median_s": statistics.median(ts), "tokens_per_s": tokens.numel() / statistics.median(ts)}
    base = out["plain_hf_forward"]["median_s"]
    out["time_ratio_last_layer_vs_plain"] = out["harvest_last_layer"]["median_s"] / base
    out["time_ratio_middle_layer_vs_plain"] = out["harvest_middle_layer"]["median_s"] / base
    out["time_ratio_last_layer_vs_plain_body"] = (out["harvest_last_layer"]["median_s"]
                                                  / out["plain_hf_body_forward"]["median_s"])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--d-in", type=int, default=768)
    p.add_argument("--expansion", type=int, default=16)
    p.add_argument("--k", type=int, default=32)
    p.add_argument("--batch", type=int, default=4096)
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--lr", type=float, default=2e-4)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    p.add_argument("--layers", type=int, default=4)
    p.add_argument("--d-model", type=int, default=256)
    p.add_argument("--vocab", type=int, default=50257)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--harvest-sequences", type=int, default=64)
    p.add_argument("--harvest-batch", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-training", action="store_true")
    p.add_argument("--skip-harvest", action="store_true")
    p.add_argument("--out", default="bench/results/bench_sae.json")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        from harness import machine  # bench/harness.py, on sys.path when run as bench/bench_sae.py
        info = machine()
    except ImportError:
        info = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    result = {"benchmark": "bench_sae", "machine": info, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "targets": {"training_speedup_vs_sae_lens": ">= 2.0", "harvest_time_ratio_vs_plain_hf": "<= 1.15"}}
    if not args.skip_training:
        result["training"] = bench_training(args)
    if not args.skip_harvest:
        result["harvest"] = bench_harvest(args)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
