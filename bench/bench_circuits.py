"""Circuit discovery cost in forward-equivalents on a GPT-2-small-size model (random weights, CPU).

Unit: one plain forward of the clean batch (no grad, no hooks). Timed, each as the median of
interleaved repeats:

    setup      CircuitSetup: the corrupt forward caching every source (the ablated values)
    eap        EAP on a fresh setup: its clean forward (which also records the clean sources) + backward
    eap_total  setup + eap: everything EAP needs (issue target: <= 3 forward-equivalents)
    eap_ig     EAP-IG over inputs, 5 steps (after setup)
    circuit    the engine evaluating one circuit (half the edges ablated), one forward

Peak memory: the process's max RSS growth while running EAP (ru_maxrss, so an upper bound).

`--agreement`: on the shipped organism tiny-gpt2, IOI, 64 prompts, patching: Spearman of every
attribution variant (EAP; EAP-IG over inputs and over activations at 5 / 20 / 50 steps) against
exact edge patching, over all edges and over the top-k edges by |exact|; the Spearman of exact
noising against exact denoising (m(empty) - m({e})); and the normalised faithfulness of each
method's top 10% of edges. No setting is chosen from these numbers: the methods run at their
defaults (EAP-IG: 5 steps over the inputs, as in Hanna et al. 2024).

    python bench/bench_circuits.py [--quick]      -> bench/results/circuits.json
    python bench/bench_circuits.py --agreement    -> bench/results/circuits_agreement.json
"""

from __future__ import annotations

import argparse
import resource
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_hooked import _NoTokenizer, gpt2_small  # noqa: E402
from harness import interleaved, write  # noqa: E402
from mechscope import HookedModel  # noqa: E402
from mechscope.circuits import CircuitSetup, evaluate  # noqa: E402
from mechscope.circuits.attribution import eap, eap_ig_activations, eap_ig_inputs, exact  # noqa: E402


def logit_diff(answer_logits, prompt_index):
    return answer_logits[:, 1] - answer_logits[:, 2]


def agreement(n_prompts: int = 64) -> None:
    from scipy.stats import spearmanr

    import mechscope
    from mechscope.circuits.engine import mean_metric
    from mechscope.circuits.selection import top_n
    from mechscope.tasks import get_task

    model = mechscope.load("organism:tiny-gpt2")
    setup = CircuitSetup.from_task(model, get_task(model, "ioi", n_prompts=n_prompts, seed=0), ablation="patching")
    g = setup.graph
    edges = g.edge_index()
    noising = g.to_edge_vector(exact(setup))
    singles = g.empty()[None].repeat(len(edges), 1, 1)
    singles[torch.arange(len(edges)), edges[:, 0], edges[:, 1]] = True
    denoising = mean_metric(setup, g.empty())[0] - mean_metric(setup, singles).cpu()
    variants = {"eap": eap(setup)}
    for steps in (5, 20, 50):
        variants[f"eap-ig-inputs-{steps}"] = eap_ig_inputs(setup, steps)
        variants[f"eap-ig-activations-{steps}"] = eap_ig_activations(setup, steps)
    order = noising.abs().argsort(descending=True)
    ends = mean_metric(setup, torch.stack([g.full(), g.empty()]))

    def faithfulness_top(scores, fraction=0.1):
        value = mean_metric(setup, top_n(g, scores, round(fraction * g.n_edges)))[0]
        return float((value - ends[1]) / (ends[0] - ends[1]))

    rows = {}
    for name, scores in variants.items():
        v = g.to_edge_vector(scores)
        rows[name] = {"spearman_all_edges": float(spearmanr(v, noising).statistic),
                      "spearman_abs": float(spearmanr(v.abs(), noising.abs()).statistic),
                      "pearson": float(torch.corrcoef(torch.stack([v, noising]))[0, 1]),
                      **{f"spearman_top{k}": float(spearmanr(v[order[:k]], noising[order[:k]]).statistic)
                         for k in (10, 20, 50)},
                      "faithfulness_top10pct": faithfulness_top(scores)}
    q = noising.abs().quantile(torch.tensor([0.5, 0.9, 1.0])).tolist()
    payload = {"model": "organism:tiny-gpt2", "task": "ioi", "n_prompts": n_prompts, "n_edges": g.n_edges,
               "abs_exact_quantiles": {"median": q[0], "p90": q[1], "max": q[2]},
               "spearman_noising_vs_denoising": float(spearmanr(noising, denoising).statistic),
               "variants": rows, "targets": {"spearman_eap_ig_exact": 0.9}}
    print(write("circuits_agreement", payload))
    for name, row in rows.items():
        print(f"{name:26s}", {k: round(v, 3) for k, v in row.items()})


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="4 layers, fewer repeats")
    parser.add_argument("--agreement", action="store_true", help="EAP / EAP-IG variants against exact patching")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.agreement:
        agreement()
        return
    n_layers = 4 if args.quick else 12
    model = HookedModel.from_hf(gpt2_small(n_layers, 768), _NoTokenizer(), spec=f"random gpt2 {n_layers}x768")
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(3, 50257, (args.batch, args.seq), generator=gen)
    corrupt = clean.clone()
    corrupt[:, : args.seq // 2] = torch.randint(3, 50257, (args.batch, args.seq // 2), generator=gen)

    def make_setup():
        return CircuitSetup.from_tokens(model, clean, corrupt, metric=logit_diff)

    setup = make_setup()
    g = setup.graph
    half = g.full()
    half[::2] = False

    def plain():
        with torch.no_grad():
            model(clean)

    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    eap(setup)
    rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    repeats = 2 if args.quick else 3
    def fresh_eap():
        setup._clean_sources = setup._clean_answer_logits = None
        eap(setup)

    times = interleaved({"forward": plain, "setup": make_setup, "eap": fresh_eap,
                         "eap_ig": lambda: eap_ig_inputs(setup, 5), "circuit": lambda: evaluate(setup, half)},
                        repeats=repeats)
    unit = times["forward"]["median_s"]
    fe = {k: v["median_s"] / unit for k, v in times.items()}
    fe["eap_total"] = fe["setup"] + fe["eap"]
    payload = {"model": repr(model), "batch": args.batch, "seq": args.seq, "n_edges": g.n_edges,
               "seconds": {k: v["median_s"] for k, v in times.items()},
               "forward_equivalents": {k: round(v, 2) for k, v in fe.items()},
               "eap_peak_rss_growth_mb": round((rss1 - rss0) / 1024, 1),
               "targets": {"eap_total_forward_equivalents": 3.0}}
    path = write("circuits", payload)
    print(path)
    print(payload["forward_equivalents"], payload["eap_peak_rss_growth_mb"], "MB")


if __name__ == "__main__":
    main()
