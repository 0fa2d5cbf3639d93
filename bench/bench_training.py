"""Organism training throughput as a fraction of the measured fp32 matmul peak, in one process.

Work: N optimizer steps of an organism preset (default: the default organism's) on batches shaped
like its training batches: `batch_size` rows of packed documents (segments of ~30 tokens, positions
restarting, attention kept inside each, as `organisms.batches.PackedDocuments` lays them out) plus
`induction_rows_per_step` packed repeated-span rows (`packed_induction_rows`), seq_len tokens each.

Peaks, measured in the same process with the same thread count:
- ``square``: fp32 square matmul (1024^3, `organisms.flops.matmul_peak_flops`, what training cards use);
- ``model_shapes``: the matmuls the model actually runs, [rows*seq, d] @ [d, d | d_mlp | vocab]
  (fp32, best of runs): the peak this model could reach if it did nothing but its matmuls.
Achieved FLOP/s counts `organisms.flops.training_flops_per_token` per token position.

Levers timed against the baseline (the trainer's current step): AdamW foreach / fused, bf16 autocast
(with its loss and gradient error against fp32 on the same batch), twice the rows per step (same
tokens, half the steps), no packing (plain causal rows: what the packed-sequence mask costs), and
`torch.compile`. A profile of the baseline step groups self CPU time into matmul, attention,
elementwise/norm, optimizer and other.

    python bench/bench_training.py [--preset NAME] [--steps 10] [--repeats 3] [--threads 2] [--no-compile]
        -> bench/results/training.json
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved, write  # noqa: E402
from mechscope.organisms.batches import pack_rows, packed_induction_rows  # noqa: E402
from mechscope.organisms.flops import matmul_peak_flops, training_flops_per_token  # noqa: E402
from mechscope.organisms.presets import build_model, get_preset  # noqa: E402
from mechscope.organisms.shipped import DEFAULT_ORGANISM  # noqa: E402
from mechscope.organisms.train import make_optimizer, optimizer_step  # noqa: E402

MEAN_DOCUMENT = 30  # tokens per document in the organism corpus (organisms/batches.py)


def packed_batch(preset, step: int, rows: int, packed: bool = True):
    """(input_ids, labels, position_ids) [rows + induction rows, seq_len] shaped like a training batch."""
    rng = torch.Generator().manual_seed(step)
    x = torch.randint(1, preset.vocab_size, (rows, preset.seq_len), generator=rng)
    segments = []
    for r in range(rows):
        row, used = [], 0
        while used < preset.seq_len:
            n = min(int(torch.empty(1).exponential_(1 / MEAN_DOCUMENT, generator=rng)) + 2, preset.seq_len - used)
            ids = x[r, used:used + n].numpy()
            row.append((ids, ids))
            used += n
        segments.append(row)
    docs = pack_rows(segments, preset.seq_len, 0)
    if preset.induction_rows_per_step:
        ind = packed_induction_rows(step, preset.induction_rows_per_step, preset.seq_len, preset.vocab_size, 0, 0,
                                    preset.induction_max_prefix, True, min_span=preset.induction_min_span)
        docs = tuple(torch.cat(pair) for pair in zip(docs, ind, strict=True))
    if not packed:
        n, t = docs[2].shape
        docs = (docs[0], docs[1], torch.arange(t).expand(n, t))
    return docs


def peaks(preset, rows: int, seconds: float = 1.0) -> dict:
    """fp32 FLOP/s: the square matmul and the model's own matmul shapes (best of runs each)."""
    tokens = rows * preset.seq_len
    d, mlp = preset.d_model, 4 * preset.d_model
    shapes = {"qkv/out [T,d]@[d,d]": (tokens, d, d), "mlp [T,d]@[d,4d]": (tokens, d, mlp),
              "mlp down [T,4d]@[4d,d]": (tokens, mlp, d), "unembed [T,d]@[d,V]": (tokens, d, preset.vocab_size)}
    out = {"square_1024": matmul_peak_flops(1024, seconds)}
    for name, (m, k, n) in shapes.items():
        a, b = torch.randn(m, k), torch.randn(k, n)
        best, start = 0.0, time.perf_counter()
        while time.perf_counter() - start < seconds:
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - t))
        out[name] = best
    # the model's matmul peak: its FLOP mix weighted by each shape's speed (harmonic)
    weights = {"qkv/out [T,d]@[d,d]": 4 * d * d, "mlp [T,d]@[d,4d]": d * mlp, "mlp down [T,4d]@[4d,d]": d * mlp,
               "unembed [T,d]@[d,V]": d * preset.vocab_size}
    total = sum(weights.values())
    out["model_shapes"] = total / sum(w / out[k] for k, w in weights.items())
    return out


def contender(preset, *, n_steps: int, rows: int, optimizer: str = "default", autocast: bool = False,
              packed: bool = True, compile_model: bool = False):
    """A fresh seeded model + optimizer and a callable that runs its next n_steps training steps
    (3 warm-up steps, compilation included, run here); returns (run, tokens per call)."""
    torch.manual_seed(0)
    model = build_model(preset)
    model.train()
    opt = make_optimizer(model, preset, implementation=optimizer)
    forward = torch.compile(model) if compile_model else model
    batches = [packed_batch(preset, s, rows, packed) for s in range(n_steps)]

    def one(batch):
        x, labels, positions = batch
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            loss = forward(input_ids=x, labels=labels, position_ids=positions, use_cache=False).loss
        optimizer_step(model, opt, loss, preset.grad_clip)

    for batch in batches[:3]:
        one(batch)

    def run():
        for batch in batches:
            one(batch)

    return run, sum(b[0].numel() for b in batches)


def bf16_error(preset, rows: int) -> dict:
    """Loss and gradient of one batch in bf16 autocast against fp32, same weights."""
    torch.manual_seed(0)
    model = build_model(preset)
    x, labels, positions = packed_batch(preset, 0, rows)
    grads = {}
    for name, on in [("fp32", False), ("bf16", True)]:
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=on):
            loss = model(input_ids=x, labels=labels, position_ids=positions, use_cache=False).loss
        loss.backward()
        grads[name] = (float(loss.detach()), torch.cat([p.grad.flatten().float() for p in model.parameters()]))
    (l32, g32), (l16, g16) = grads["fp32"], grads["bf16"]
    return {"loss_fp32": l32, "loss_bf16": l16, "grad_cosine": float(torch.nn.functional.cosine_similarity(g32, g16, 0)),
            "grad_relative_error": float((g16 - g32).norm() / g32.norm())}


CATEGORIES = {"matmul": ("addmm", "mm", "bmm", "matmul", "linear"),
              "attention": ("scaled_dot_product", "softmax", "_efficient_attention", "flash"),
              "optimizer": ("adam", "_foreach", "lerp", "addcdiv", "sqrt"),
              "mask/packing": ("where", "eq", "cumsum", "diff", "index", "gather", "arange", "vmap", "bitwise")}


def profile(preset, rows: int, n_steps: int = 5) -> dict:
    """Self CPU time of the baseline step by op category, and the top ops."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.manual_seed(0)
    model = build_model(preset)
    opt = make_optimizer(model, preset)
    batches = [packed_batch(preset, s, rows) for s in range(n_steps + 2)]
    for x, labels, positions in batches[:2]:
        optimizer_step(model, opt, model(input_ids=x, labels=labels, position_ids=positions, use_cache=False).loss,
                       preset.grad_clip)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        for x, labels, positions in batches[2:]:
            optimizer_step(model, opt, model(input_ids=x, labels=labels, position_ids=positions,
                                             use_cache=False).loss, preset.grad_clip)
    events = [e for e in prof.key_averages() if e.self_cpu_time_total > 0]
    total = sum(e.self_cpu_time_total for e in events)
    by_category = dict.fromkeys([*CATEGORIES, "other"], 0.0)
    for e in events:
        name = e.key.lower()
        category = next((c for c, keys in CATEGORIES.items() if any(k in name for k in keys)), "other")
        by_category[category] += e.self_cpu_time_total
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:15]
    return {"share_by_category": {k: v / total for k, v in by_category.items()},
            "top_ops": [{"op": e.key, "share": e.self_cpu_time_total / total, "calls": e.count} for e in top]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--preset", default=DEFAULT_ORGANISM)
    parser.add_argument("--steps", type=int, default=10, help="training steps per timed block")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="round-robin blocks of --steps steps each")
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile contender")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    preset = get_preset(args.preset)
    rows = preset.batch_size
    all_rows = rows + preset.induction_rows_per_step
    flops_per_token = training_flops_per_token(preset.n_layer, preset.d_model, 4 * preset.d_model,
                                               preset.vocab_size, preset.seq_len)
    peak_before = peaks(preset, all_rows)
    contenders = {
        "baseline": dict(),
        "adamw_foreach": dict(optimizer="foreach"),
        "adamw_fused": dict(optimizer="fused"),
        "bf16_autocast": dict(autocast=True),
        "twice_the_rows": dict(rows=2 * rows),
        "unpacked_causal": dict(packed=False),
    }
    if not args.no_compile:
        contenders["torch_compile"] = dict(compile_model=True)
    runs, tokens, failed = {}, {}, {}
    for name, kw in contenders.items():
        kw = {"rows": rows, "n_steps": args.steps, **kw}
        try:
            runs[name], tokens[name] = contender(preset, **kw)
        except Exception as err:  # a lever that does not run here is a result, not a crash
            failed[name] = {"error": f"{type(err).__name__}: {err}"[:300]}
    # round-robin blocks of steps (harness.interleaved): load on a shared machine hits every contender alike
    timed = interleaved(runs, repeats=args.repeats, warmup=0)
    # on a shared machine the fastest block is the one least slowed by other processes: report it too
    timings = {name: {"seconds_per_step": t["median_s"] / args.steps,
                      "tokens_per_second": tokens[name] / t["median_s"],
                      "best_tokens_per_second": tokens[name] / t["min_s"], "runs_s": t["runs_s"]}
               for name, t in timed.items()} | failed
    peak_after = peaks(preset, all_rows)
    peak = {k: max(peak_before[k], peak_after[k]) for k in peak_before}
    for t in timings.values():
        if "tokens_per_second" in t:
            t["achieved_flops_per_second"] = t["tokens_per_second"] * flops_per_token
            t["fraction_of_square_peak"] = t["achieved_flops_per_second"] / peak["square_1024"]
            t["fraction_of_model_shapes_peak"] = t["achieved_flops_per_second"] / peak["model_shapes"]
            t["best_fraction_of_square_peak"] = t["best_tokens_per_second"] * flops_per_token / peak["square_1024"]
    prof = profile(preset, rows)
    error = bf16_error(preset, rows)
    path = write("training", {
        "preset": preset.name, "work": {"rows": all_rows, "seq_len": preset.seq_len, "steps": args.steps,
                                         "repeats": args.repeats,
                                         "flops_per_token": flops_per_token},
        "peak_flops": peak, "peak_before": peak_before, "peak_after": peak_after, "timings": timings,
        "bf16_vs_fp32": error, "profile": prof, "target_fraction": 0.5,
    })
    print(f"{preset.name}: {all_rows} rows x {preset.seq_len}, {flops_per_token / 1e6:.2f} MFLOP/token, "
          f"{args.threads} threads")
    print("peaks (GFLOP/s): " + ", ".join(f"{k} {v / 1e9:.1f}" for k, v in peak.items()))
    for name, t in timings.items():
        if "error" in t:
            print(f"{name:18s} failed: {t['error']}")
        else:
            print(f"{name:18s} {t['seconds_per_step'] * 1e3:8.1f} ms/step {t['tokens_per_second']:9.0f} tok/s "
                  f"{t['fraction_of_square_peak']:6.1%} of square peak {t['fraction_of_model_shapes_peak']:6.1%} "
                  f"of model-shape peak; best block {t['best_fraction_of_square_peak']:6.1%} of square peak")
    print("profile (self CPU): " + ", ".join(f"{k} {v:.0%}" for k, v in prof["share_by_category"].items()))
    print("bf16 vs fp32: " + ", ".join(f"{k} {v:.4g}" for k, v in error.items()) + f"  -> {path}")


if __name__ == "__main__":
    main()
