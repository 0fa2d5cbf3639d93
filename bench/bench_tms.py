"""Benchmark: the toy-models-of-superposition dimensionality sweep, ours vs plain numpy.

The work: n=200 features, m=20 hidden, 20 sparsities p = 20^-linspace(0, 1, 20) trained at once,
batch 1024, Adam lr 1e-3, 10k steps (the paper's dimensionality sweep). Both implementations run
in this process, on the same thread count, and the JSON records seconds, ms per step and the ratio.

    python bench/bench_tms.py                       # full: 10k steps each (numpy takes ~10 min)
    python bench/bench_tms.py --steps 300           # quick look
    python bench/bench_tms.py --numpy-steps 500     # ours full, numpy on 500 steps, per-step ratio

With --numpy-steps the numpy time for the full run is extrapolated from its per-step time, and the
JSON says so. The machine's load average is recorded before and after: on a shared machine the
absolute times are noisy, the ratio less so.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=10_000, help="training steps for ours (and numpy unless --numpy-steps)")
    ap.add_argument("--numpy-steps", type=int, default=None, help="steps for the numpy reference (extrapolated)")
    ap.add_argument("--threads", type=int, default=2, help="threads for torch and numpy's BLAS")
    ap.add_argument("--features", type=int, default=200)
    ap.add_argument("--hidden", type=int, default=20)
    ap.add_argument("--sparsities", type=int, default=20)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--skip-numpy", action="store_true")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "tms.json")
    return ap.parse_args(argv)


def numpy_reference(n_features, n_hidden, probs, steps, batch, lr=1e-3, seed=0):
    """The same model, loss and Adam written plainly in numpy: x' = ReLU(WᵀWx + b), instances first.

    Returns (W [I, m, n], seconds).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    n_inst = len(probs)
    p = np.asarray(probs, dtype=np.float32)[:, None, None]
    W = (rng.standard_normal((n_inst, n_hidden, n_features)) * np.sqrt(2.0 / (n_features + n_hidden))).astype(np.float32)
    b = np.zeros((n_inst, n_features), dtype=np.float32)
    params = [W, b]
    m1 = [np.zeros_like(q) for q in params]
    m2 = [np.zeros_like(q) for q in params]
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    scale = 2.0 / (batch * n_features)
    start = time.perf_counter()
    for t in range(1, steps + 1):
        x = rng.random((n_inst, batch, n_features), dtype=np.float32)
        x *= rng.random((n_inst, batch, n_features), dtype=np.float32) < p
        h = x @ W.transpose(0, 2, 1)                            # [I, B, m]
        pre = h @ W + b[:, None, :]                             # [I, B, n]
        g = (np.maximum(pre, 0) - x) * (pre > 0) * scale        # d loss / d pre
        grad_W = h.transpose(0, 2, 1) @ g + (g @ W.transpose(0, 2, 1)).transpose(0, 2, 1) @ x
        grads = [grad_W, g.sum(axis=1)]
        for q, gq, a, s in zip(params, grads, m1, m2, strict=True):
            a *= beta1
            a += (1 - beta1) * gq
            s *= beta2
            s += (1 - beta2) * gq * gq
            q -= lr * (a / (1 - beta1**t)) / (np.sqrt(s / (1 - beta2**t)) + eps)
    return W, time.perf_counter() - start


def main(argv=None) -> dict:
    args = parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = str(args.threads)  # before numpy / torch load their BLAS
    import numpy as np
    import torch

    from mechscope.toy import SuperpositionSweep, ToyConfig, sweep_probabilities, train_toy
    from mechscope.toy.measures import dimensions_per_feature

    torch.set_num_threads(args.threads)
    probs = sweep_probabilities(args.sparsities)
    cfg = ToyConfig(n_features=args.features, n_hidden=args.hidden, n_instances=args.sparsities,
                    feature_probability=probs, importance_decay=1.0, steps=args.steps,
                    batch_size=args.batch, lr=1e-3, threads=args.threads)
    load_before = os.getloadavg()
    trained = train_toy(cfg, show_progress=False)
    ours = trained.seconds
    result = {
        "benchmark": "tms dimensionality sweep",
        "work": {"n_features": args.features, "n_hidden": args.hidden, "instances": args.sparsities,
                 "batch": args.batch, "steps": args.steps},
        "threads": args.threads,
        "ours_seconds": round(ours, 3),
        "ours_ms_per_step": round(1e3 * ours / args.steps, 3),
        "ours_dims_per_feature": [round(v, 4) for v in SuperpositionSweep.from_trained(trained).dims_per_feature.tolist()],
    }
    if not args.skip_numpy:
        np_steps = args.numpy_steps or args.steps
        W_np, np_seconds = numpy_reference(args.features, args.hidden, probs, np_steps, args.batch)
        per_step = np_seconds / np_steps
        result.update({
            "numpy_steps": np_steps,
            "numpy_seconds_measured": round(np_seconds, 3),
            "numpy_ms_per_step": round(1e3 * per_step, 3),
            "numpy_seconds_for_full_steps": round(per_step * args.steps, 3),
            "numpy_extrapolated": np_steps != args.steps,
            "ratio_numpy_over_ours": round(per_step * args.steps / ours, 3),
            "numpy_dims_per_feature": [round(v, 4) for v in dimensions_per_feature(torch.from_numpy(W_np)).tolist()],
        })
    result.update({
        "load_average_before": [round(v, 2) for v in load_before],
        "load_average_after": [round(v, 2) for v in os.getloadavg()],
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__,
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    })
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    tmp.replace(args.out)
    json.dump(result, sys.stdout, indent=2)
    print()
    return result


if __name__ == "__main__":
    main()
