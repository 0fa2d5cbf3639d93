"""Transcoder quality on the default organism (issue 19 acceptance) and attribution-graph time.

    python bench/bench_transcoders.py --steps 1500 --out bench/results/bench_transcoders.json

Trains a plain and a skip TopK transcoder (k = 32, 8x expansion) on one MLP of organism:tiny-gpt2
from the same activations and hyperparameters, splices each in place of the MLP on held-out text
(FVU, CE loss recovered, KL), then times a 20-token attribution graph through one transcoder per
layer. Targets from the issue: FVU <= 0.2, CE recovered >= 0.9 at k = 32, skip beats plain, graph
<= 30 s on 2 cores.
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
    ap.add_argument("--graph-steps", type=int, default=300)
    ap.add_argument("--out", type=Path, default=Path("bench/results/bench_transcoders.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = mechscope.load("organism:tiny-gpt2")
    d = model.cfg.d_model
    train = eval_tokens(model, seq_len=64, n_sequences=args.n_sequences, seed=1)
    held = eval_tokens(model, seq_len=64, n_sequences=32, seed=0)
    tcs = {name: create_transcoder(TranscoderConfig.for_mlp(d, args.layer, k=32, expansion_factor=8,
                                                            skip_connection=skip, dead_after_tokens=50_000))
           for name, skip in (("plain", False), ("skip", True))}
    pairs = harvest_pairs(model, train, tcs.values())
    start = time.perf_counter()
    SAETrainer(tcs, TrainerConfig(steps=args.steps, lr=2e-3, warmup_steps=50, show_progress=False)).fit(
        pair_batches(pairs, 512, seed=0))
    train_s = time.perf_counter() - start
    quality = {}
    for name, tc in tcs.items():
        r = evaluate_transcoder(tc, model, held)
        quality[name] = {"fvu": r.fvu, "ce_loss_recovered": r.ce_loss_recovered, "kl": r.kl_with_sae, "l0": r.l0,
                         "dead_fraction": r.dead_fraction}
    all_layers = train_mlp_transcoders(model, train, TranscoderRun(steps=args.graph_steps, k=32))
    prompt = held[1, :20]
    start = time.perf_counter()
    graph = attribute(model, all_layers, prompt, show_progress=False)
    graph_s = time.perf_counter() - start
    replacement, completeness = graph.scores()
    out = {"layer": args.layer, "k": 32, "d_sae": 8 * d, "steps": args.steps, "train_tokens": int(train.numel()),
           "train_seconds_two_transcoders": train_s, "quality": quality,
           "skip_beats_plain": quality["skip"]["fvu"] < quality["plain"]["fvu"],
           "graph": {"n_tokens": 20, "seconds": graph_s, "n_features": graph.n_features,
                     "replacement_score": replacement, "completeness_score": completeness,
                     "torch_threads": torch.get_num_threads()},
           "targets": {"fvu_max": 0.2, "ce_recovered_min": 0.9, "graph_seconds_max": 30}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
