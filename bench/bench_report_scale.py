"""Per-claim seconds of the quick report on random-init models of real sizes (issue 20).

Shapes (random init; the cost of a claim depends on the shape, not on the weights):
  llama-4l     the 135M shape below with 4 layers          (scaling point)
  llama-12l    the 135M shape below with 12 layers         (scaling point)
  llama-135m   SmolLM2-135M: LlamaConfig, 30 layers, hidden 576, 9 heads / 3 kv heads, SwiGLU 1536,
               tied embeddings, rope_theta 100000
  gpt2-small   GPT-2 small: 12 layers, d_model 768, 12 heads, vocabulary 50257
  tiny-gpt2    the shipped GPT-2 organism (4 layers, d_model 128): the scale the cost table was written at

The LLaMA shapes use the GPT-2 tokenizer (the only real tokenizer on this machine), so their vocabulary
is 50257 rather than SmolLM2's 49152: 2% more unembedding work than the real model.

Usage (one claim at a time while working; the whole 135M report at most twice on a shared machine):
    PYTHONPATH=src python bench/bench_report_scale.py --shape llama-135m --claims C01,C16 [--twin]
Writes bench/results/report_scale.json (entries merged by shape/claim/twin, so runs accumulate) and
prints a table of seconds per claim (model, twin) with the verdict. Each run also records, per shape, the
model's config and the report's price calibration (`claims.cost.calibrate`, timed in process CPU seconds
on one thread), so the report's estimate before it starts can be checked against the CPU seconds the
claims took (the `est s` column; tests/report/test_estimate.py reads the saved rows).

Scaling study (issue 20: "no claim's time grows faster than linearly in layers x tokens"):
    PYTHONPATH=src python bench/bench_report_scale.py --study [--claims C01,C16] [--twin] [--from-results]
runs the claims on llama-4l, llama-12l and llama-135m (4, 12, 30 layers; same budget, so the same
tokens: layers x tokens is proportional to layers) unless --from-results reuses the rows already in
report_scale.json, then fits each claim's CPU seconds to a * layers^b by least squares in log-log and
prints b per claim with a check b <= MAX_EXPONENT. Writes bench/results/report_scale_study.json and a
self-contained plotly page report_scale_study.html (seconds against layers, log-log, with a slope-1 guide).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import RESULTS, write  # noqa: E402

TOKENIZER = Path(__file__).resolve().parents[2] / "shared" / "tokenizers" / "gpt2"
SHAPES = ("llama-4l", "llama-12l", "llama-135m", "gpt2-small", "tiny-gpt2")
STUDY_SHAPES = ("llama-4l", "llama-12l", "llama-135m")   # 4, 12, 30 layers of the 135M shape
MAX_EXPONENT = 1.15   # a fitted exponent in layers above this counts as faster than linear (noise allowance)
MIN_SECONDS = 1.0     # claims cheaper than this at every depth are reported but not fitted (timer noise)
TARGET_S = {"llama-135m": 300, "gpt2-small": 180}


def build(shape: str, seed: int = 0):
    """A random-init HookedModel of `shape` with the GPT-2 tokenizer."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    import mechscope
    from mechscope import HookedModel

    if shape == "tiny-gpt2":
        return mechscope.load("organism:tiny-gpt2", device="cpu")
    tokenizer = AutoTokenizer.from_pretrained(os.environ.get("MECHSCOPE_BENCH_TOKENIZER", str(TOKENIZER)))
    torch.manual_seed(seed)
    if shape == "gpt2-small":
        hf = GPT2LMHeadModel(GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257))
    else:
        layers = {"llama-4l": 4, "llama-12l": 12, "llama-135m": 30}[shape]
        hf = LlamaForCausalLM(LlamaConfig(
            num_hidden_layers=layers, hidden_size=576, num_attention_heads=9, num_key_value_heads=3,
            intermediate_size=1536, vocab_size=len(tokenizer), tie_word_embeddings=True, rope_theta=100000.0,
            max_position_embeddings=2048))
    return HookedModel.from_hf(hf.eval(), tokenizer, spec=f"random:{shape}")


def calibration_entry(model, budget_name: str) -> dict:
    """The report's prices on `model` in process CPU seconds (1 thread), with the config they priced."""
    import dataclasses

    from mechscope.claims.base import Budget
    from mechscope.claims.cost import calibrate

    cal = calibrate(model, Budget.named(budget_name).seq_len, repeats=5, clock=time.process_time)
    return {"calibration": dataclasses.asdict(cal), "config": model.cfg.to_dict(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


def run(shape: str, ids: str | None, twin: bool, budget_name: str) -> tuple[list[dict], dict]:
    from mechscope.claims.base import NULL_TWIN, Budget
    from mechscope.claims.registry import discover, run_claims

    model = build(shape)
    calibration = calibration_entry(model, budget_name)
    specs = [s for s in discover() if s.module is not None]
    if not twin:  # measure the model only: present every claim as if its null were its own sentence
        import types

        patched = []
        for s in specs:
            if s.module.NULL == NULL_TWIN:
                mod = types.ModuleType(s.module.__name__)
                mod.__dict__.update(s.module.__dict__)
                mod.NULL = "bench: twin skipped"
                mod.verdict = lambda metrics, null, _v=s.module.verdict: _v(metrics, None)
                s = type(s)(s.entry, module=mod)
            patched.append(s)
        specs = patched
    rows = []
    cpu_start = [0.0]

    def on_progress(index, total, spec, result):
        if result is None:
            print(f"[{index}/{total}] {spec.id} ...", file=sys.stderr, flush=True)
            cpu_start[0] = time.process_time()
            return
        rows.append({"shape": shape, "claim": spec.id, "twin": twin, "budget": budget_name,
                     "seconds": round(result.seconds, 2), "twin_seconds": round(result.null_seconds, 2),
                     "cpu_seconds": round(time.process_time() - cpu_start[0], 2),
                     "verdict": result.verdict, "error": result.error,
                     "n_layers": model.cfg.n_layers, "when": time.strftime("%H:%M:%S", time.gmtime())})
        print(f"    {spec.id} {result.seconds:7.1f}s twin {result.null_seconds:7.1f}s "
              f"cpu {rows[-1]['cpu_seconds']:7.1f}s  {result.verdict}"
              + (f"  ({result.error[:120]})" if result.error else ""), file=sys.stderr, flush=True)

    run_claims(model, ids=ids, budget=Budget.named(budget_name), specs=specs, on_progress=on_progress)
    return rows, calibration


def estimated_cpu_seconds(entry: dict, claim: str, twin: bool, budget_name: str) -> float:
    """The report's estimate of one claim (model, and twin when measured) from a saved calibration entry."""
    from mechscope.claims.base import Budget
    from mechscope.claims.cost import estimate_saved
    from mechscope.claims.registry import discover, select

    return estimate_saved(entry["config"], entry["calibration"], select(discover(), [claim]),
                          Budget.named(budget_name), twin=twin).total_seconds


def merge(rows: list[dict], calibrations: dict | None = None) -> dict:
    path = RESULTS / "report_scale.json"
    saved = json.loads(path.read_text()) if path.exists() else {}
    old = saved.get("rows", [])
    calibrations = {**saved.get("calibrations", {}), **(calibrations or {})}
    key = lambda r: (r["shape"], r["claim"], r["twin"], r["budget"])  # noqa: E731
    fresh = {key(r) for r in rows}
    merged = [r for r in old if key(r) not in fresh] + rows
    totals: dict[str, dict[str, float]] = {}
    for r in merged:
        if r["seconds"] is None:   # a run stopped by hand (its verdict says so): kept, not summed
            continue
        t = totals.setdefault(f"{r['shape']} twin={r['twin']} {r['budget']}", {"wall_s": 0.0, "cpu_s": 0.0})
        t["wall_s"] = round(t["wall_s"] + r["seconds"] + r["twin_seconds"], 1)
        t["cpu_s"] = round(t["cpu_s"] + r.get("cpu_seconds", float("nan")), 1)
    return {"rows": sorted(merged, key=key), "totals": totals, "targets_s": TARGET_S, "calibrations": calibrations,
            "note": "wall seconds on the shared machine; cpu_seconds = this process's CPU time (1 torch thread), "
                    "what the claim costs on an idle core"}


def table(payload: dict) -> str:
    lines = [f"{'shape':<12} {'claim':<5} {'twin':<5} {'model s':>8} {'twin s':>8} {'cpu s':>8} {'est s':>8}  verdict"]
    def num(value) -> float:       # None: a run stopped by hand
        return float("nan") if value is None else value

    calibrations = payload.get("calibrations", {})
    for r in payload["rows"]:
        entry = calibrations.get(r["shape"])
        est = estimated_cpu_seconds(entry, r["claim"], r["twin"], r["budget"]) if entry else float("nan")
        lines.append(f"{r['shape']:<12} {r['claim']:<5} {str(r['twin']):<5} {num(r['seconds']):8.1f} "
                     f"{num(r['twin_seconds']):8.1f} {num(r.get('cpu_seconds')):8.1f} {est:8.1f}  {r['verdict']}")
    lines += [f"total {k}: {v}" for k, v in payload["totals"].items()]
    return "\n".join(lines)


def fit_exponent(layers: list[int], seconds: list[float]) -> float:
    """Least-squares slope b of log(seconds) = log(a) + b log(layers)."""
    xs = [math.log(v) for v in layers]
    ys = [math.log(max(v, 1e-3)) for v in seconds]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else float("nan")


def study(rows: list[dict], twin: bool, budget_name: str) -> dict:
    """Per claim: CPU seconds (model + twin when measured) at each study depth, the fitted exponent in
    layers, and whether it is at most MAX_EXPONENT."""
    per_claim: dict[str, dict[int, float]] = {}
    for r in rows:
        if r["shape"] in STUDY_SHAPES and r["twin"] == twin and r["budget"] == budget_name:
            per_claim.setdefault(r["claim"], {})[r["n_layers"]] = r.get("cpu_seconds", r["seconds"])
    claims = {}
    for claim, points in sorted(per_claim.items()):
        layers = sorted(points)
        seconds = [points[n] for n in layers]
        entry = {"layers": layers, "cpu_seconds": seconds}
        if len(layers) >= 2 and max(seconds) >= MIN_SECONDS:
            b = fit_exponent(layers, seconds)
            entry.update(exponent=round(b, 3), linear_or_better=b <= MAX_EXPONENT)
        claims[claim] = entry
    fitted = [c for c in claims.values() if "exponent" in c]
    return {"claims": claims, "max_exponent": MAX_EXPONENT, "twin": twin, "budget": budget_name,
            "all_linear_or_better": all(c["linear_or_better"] for c in fitted) if fitted else None,
            "note": "same budget at every depth, so tokens are fixed and layers x tokens is proportional to layers"}


def study_figure(result: dict):
    import plotly.graph_objects as go

    fig = go.Figure()
    for claim, c in result["claims"].items():
        label = claim + (f" (b={c['exponent']:.2f})" if "exponent" in c else "")
        fig.add_trace(go.Scatter(x=c["layers"], y=c["cpu_seconds"], mode="lines+markers", name=label))
    seconds = [s for c in result["claims"].values() for s in c["cpu_seconds"] if s > 0]
    if seconds:   # slope-1 guide through the median claim at 4 layers
        base = sorted(seconds)[len(seconds) // 2]
        fig.add_trace(go.Scatter(x=[4, 30], y=[base, base * 30 / 4], mode="lines", name="linear (b = 1)",
                                 line={"dash": "dash", "color": "gray"}))
    fig.update_layout(title="quick report: CPU seconds per claim against depth (135M shape, log-log)",
                      xaxis={"title": "layers", "type": "log"}, yaxis={"title": "CPU seconds", "type": "log"})
    return fig


def write_study(result: dict) -> None:
    from mechscope.io import write_text_atomic

    write("report_scale_study", result)
    write_text_atomic(RESULTS / "report_scale_study.html", study_figure(result).to_html(include_plotlyjs=True))
    for claim, c in result["claims"].items():
        b = c.get("exponent")
        verdict = "n/a (under 1 s)" if b is None else ("ok" if c["linear_or_better"] else "FASTER THAN LINEAR")
        print(f"{claim:<5} layers {c['layers']} cpu s {c['cpu_seconds']}  exponent "
              f"{'-' if b is None else f'{b:.2f}'}  {verdict}")
    print(f"no claim grows faster than linearly (b <= {MAX_EXPONENT}): {result['all_linear_or_better']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=SHAPES, action="append")
    parser.add_argument("--study", action="store_true", help="scaling study on llama-4l, llama-12l, llama-135m")
    parser.add_argument("--from-results", action="store_true", help="with --study: fit the rows already saved")
    parser.add_argument("--claims", default=None, help="e.g. C01,C16 (default: every implemented claim)")
    parser.add_argument("--twin", action="store_true", help="also measure the re-initialised null twin")
    parser.add_argument("--budget", default="quick")
    parser.add_argument("--calibrate-only", action="store_true",
                        help="record the shapes' price calibration and config, run no claims")
    args = parser.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("MECHSCOPE_PROGRESS", "0")
    shapes = list(args.shape or [])
    if args.study and not args.from_results:
        shapes += [s for s in STUDY_SHAPES if s not in shapes]
    if not shapes and not args.study:
        parser.error("give --shape, or --study")
    rows, calibrations = [], {}
    for shape in shapes:
        if args.calibrate_only:
            calibrations[shape] = calibration_entry(build(shape), args.budget)
            continue
        shape_rows, calibrations[shape] = run(shape, args.claims, args.twin, args.budget)
        rows += shape_rows
    payload = merge(rows, calibrations)
    if rows or calibrations:
        write("report_scale", payload)
        print(table(payload))
    if args.study:
        wanted = set(args.claims.split(",")) if args.claims else None
        write_study(study([r for r in payload["rows"] if wanted is None or r["claim"] in wanted],
                          args.twin, args.budget))


if __name__ == "__main__":
    main()
