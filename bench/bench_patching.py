"""Activation patching and attribution patching speed, side by side with TransformerLens.

Work (issue 6): the full resid_pre patching grid (every layer x every position) on a 12-layer
GPT-2-size model (d_model 768, random weights) with one 16-token clean/corrupt prompt pair,
metric = logit difference at the last position. TransformerLens runs the same weights with
`patching.get_act_patch_resid_pre` (its clean cache included in its time, as ours includes the
clean and corrupt runs). Targets: >= 5x faster than TransformerLens; attribution patching over
all heads (hook_z, every layer) <= 3 forward-equivalents (one plain forward of the prompt pair's
corrupt prompt = 1). Needs the `bench` extra for the TransformerLens side.

    python bench/bench_patching.py [--quick]      -> bench/results/patching.json
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch

os.environ.setdefault("TQDM_DISABLE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hooked import _NoTokenizer, gpt2_small, transformer_lens_twin  # noqa: E402
from harness import interleaved, write  # noqa: E402
from mechscope import HookedModel  # noqa: E402
from mechscope.patching.activation import PatchingConfig, activation_patching  # noqa: E402
from mechscope.patching.attribution import attribution_patching  # noqa: E402
from mechscope.tasks.base import Task  # noqa: E402


def make_task(seq: int) -> Task:
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(0, 50257, (1, seq), generator=gen)
    corrupt = clean.clone()
    corrupt[0, [3, seq // 2]] = torch.randint(0, 50257, (2,), generator=gen)
    return Task(name="bench", clean_tokens=clean, corrupt_tokens=corrupt,
                answer_ids=torch.tensor([1000]), wrong_ids=torch.tensor([2000]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="4 layers: a smoke run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n_layers, seq = (4, 16) if args.quick else (12, 16)
    hf = gpt2_small(n_layers, 768)
    model = HookedModel.from_hf(hf, _NoTokenizer())
    task = make_task(seq)
    out: dict = {}

    def ours():
        out["ours"] = activation_patching(model, task, "resid_pre").patched_metric

    def ours_full():
        out["ours_full"] = activation_patching(model, task, "resid_pre",
                                               PatchingConfig(skip_lower_layers=False)).patched_metric

    contenders = {"mechscope_grid": ours, "mechscope_grid_no_layer_skip": ours_full}
    tl = transformer_lens_twin(hf)
    if tl is not None:
        from transformer_lens import patching

        answer, wrong = int(task.answer_ids[0]), int(task.wrong_ids[0])

        def metric(logits):
            return logits[0, -1, answer] - logits[0, -1, wrong]

        def theirs():
            _, clean_cache = tl.run_with_cache(task.clean_tokens)
            out["tl"] = patching.get_act_patch_resid_pre(tl, task.corrupt_tokens, clean_cache, metric)

        contenders["transformer_lens_grid"] = theirs

    def plain_forward():
        model(task.corrupt_tokens)

    def attribution():
        attribution_patching(model, task, sites=("z",))

    single = {"mechscope_forward": plain_forward}
    if tl is not None:
        single["transformer_lens_forward"] = lambda: tl(task.corrupt_tokens)
    with torch.no_grad():
        grid_timings = interleaved(contenders, repeats=args.repeats)
        forward_timings = interleaved(single, repeats=10)
    attr_timings = interleaved({"forward": lambda: torch.no_grad()(plain_forward)(), "attribution_z": attribution},
                               repeats=5 * args.repeats)
    ours_s = grid_timings["mechscope_grid"]["median_s"]
    result = {
        "work": {"n_layers": n_layers, "d_model": 768, "seq": seq, "grid_sites": n_layers * seq,
                 "threads": args.threads},
        "grid_timings": grid_timings, "attribution_timings": attr_timings,
        "single_forward_timings": forward_timings,
        "grid_in_single_forwards": {k: v["median_s"] / forward_timings["mechscope_forward"]["median_s"]
                                    for k, v in grid_timings.items()},
        "attribution_forward_equivalents": attr_timings["attribution_z"]["median_s"] / attr_timings["forward"]["median_s"],
        "layer_skip_speedup": grid_timings["mechscope_grid_no_layer_skip"]["median_s"] / ours_s,
        "transformer_lens": tl is not None,
        "targets": {"speedup_vs_transformer_lens": 5.0, "attribution_forward_equivalents": 3.0},
    }
    if tl is not None:
        result["speedup_vs_transformer_lens"] = grid_timings["transformer_lens_grid"]["median_s"] / ours_s
        result["max_abs_diff_vs_transformer_lens"] = float((out["ours"] - out["tl"].cpu()).abs().max())
        result["met"] = {"speedup": result["speedup_vs_transformer_lens"] >= 5.0}
    result.setdefault("met", {})["attribution"] = result["attribution_forward_equivalents"] <= 3.0
    path = write("patching", result)
    for k, v in grid_timings.items():
        print(f"{k:32s} {v['median_s']:8.3f} s")
    if tl is not None:
        print(f"speedup vs TransformerLens: {result['speedup_vs_transformer_lens']:.1f}x "
              f"(max |diff| {result['max_abs_diff_vs_transformer_lens']:.2e})")
    print(f"attribution over all heads: {result['attribution_forward_equivalents']:.2f} forward-equivalents -> {path}")


if __name__ == "__main__":
    main()
