"""Transcoder quality on organism:tiny-gpt2 (issue 19 acceptance) and attribution-graph time.

    python bench/bench_transcoders.py --steps 1500 --out bench/results/bench_transcoders.json
    python bench/bench_transcoders.py --k 4 8 16 32 --graph-steps 0 --out bench/results/bench_transcoders_k.json

Trains a plain and a skip TopK transcoder (k = 32 or each --k, 8x expansion) on one MLP of organism:tiny-gpt2
from the same activations and hyperparameters, splices each in place of the MLP on held-out text
(FVU, CE loss recovered, KL), then times a 20-token attribution graph through one transcoder per
layer. Targets from the issue: FVU <= 0.2, CE recovered >= 0.9 at k = 32, skip beats plain, graph
<= 30 s on 2 cores. At k = 32 of d_model = 128 both reach FVU ~0.015, where the sparsity bottleneck
hardly binds; the skip connection's gain (Paulo et al. 2025: a better sparsity-fidelity frontier) is
expected where it does, at small k. Measured (layer 2, 1500 steps, bench/results/bench_transcoders_k.json):
held-out FVU plain / skip 0.087 / 0.076 at k = 4, 0.057 / 0.048 at k = 8, 0.0152 / 0.0154 at k = 32;
KL lower with the skip at every k (0.0248 / 0.0207, 0.0153 / 0.0131, 0.0054 / 0.0047); CE loss recovered
higher without it at every k (0.925 / 0.905, 0.980 / 0.921, 1.002 / 0.995).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import mechscope
from mechscope.data.text import eval_tokens
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder, harvest_pairs, pair_batches
from mechscope.dictionary.transcoder_evaluate import evaluate_transcoder
from mechscope.dictionary.transcoder_training import TranscoderRun, train_mlp_transcoders
from mechscope.graphs.attribute import attribute


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--n-sequences", type=int, default=512)
    ap.add_argument("--graph-steps", type=int, default=300, help="0: no attribution graph")
    ap.add_argument("--k", type=int, nargs="+", default=[32], help="active latents; plain and skip at each")
    ap.add_argument("--out", type=Path, default=Path("bench/results/bench_transcoders.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = mechscope.load("organism:tiny-gpt2")
    d = model.cfg.d_model
    train = eval_tokens(model, seq_len=64, n_sequences=args.n_sequences, seed=1)
    held = eval_tokens(model, seq_len=64, n_sequences=32, seed=0)
    pairs = None
    quality_by_k, train_s = {}, {}
    for k in args.k:
        tcs = {name: create_transcoder(TranscoderConfig.for_mlp(d, args.layer, k=k, expansion_factor=8,
                                                                skip_connection=skip, dead_after_tokens=50_000))
               for name, skip in (("plain", False), ("skip", True))}
        pairs = pairs if pairs is not None else harvest_pairs(model, train, tcs.values())
        start = time.perf_counter()
        SAETrainer(tcs, TrainerConfig(steps=args.steps, lr=2e-3, warmup_steps=50, show_progress=False)).fit(
            pair_batches(pairs, 512, seed=0))
        train_s[k] = time.perf_counter() - start
        quality = {}
        for name, tc in tcs.items():
            r = evaluate_transcoder(tc, model, held)
            quality[name] = {"fvu": r.fvu, "ce_loss_recovered": r.ce_loss_recovered, "kl": r.kl_with_sae, "l0": r.l0,
                             "dead_fraction": r.dead_fraction}
        quality["skip_beats_plain"] = quality["skip"]["fvu"] < quality["plain"]["fvu"]
        quality_by_k[k] = quality
        print(k, json.dumps(quality), flush=True)
    out = {"layer": args.layer, "k": args.k, "d_sae": 8 * d, "steps": args.steps, "train_tokens": int(train.numel()),
           "train_seconds_two_transcoders": train_s, "quality_by_k": quality_by_k,
           "targets": {"fvu_max": 0.2, "ce_recovered_min": 0.9, "graph_seconds_max": 30}}
    if args.graph_steps:
        out["graph"] = graph_time(model, train, held, args.graph_steps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


def graph_time(model, train, held, steps: int) -> dict:
    """Seconds for a 20-token attribution graph through one k = 32 transcoder per layer."""
    all_layers = train_mlp_transcoders(model, train, TranscoderRun(steps=steps, k=32))
    prompt = held[1, :20]
    start = time.perf_counter()
    graph = attribute(model, all_layers, prompt, show_progress=False)
    graph_s = time.perf_counter() - start
    replacement, completeness = graph.scores()
    return {"n_tokens": 20, "seconds": graph_s, "n_features": graph.n_features, "replacement_score": replacement,
            "completeness_score": completeness, "torch_threads": torch.get_num_threads()}


if __name__ == "__main__":
    main()
