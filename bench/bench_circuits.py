"""Circuit discovery cost in forward-equivalents on a GPT-2-small-size model (random weights, CPU).

Unit: one plain forward of the clean batch (no grad, no hooks). Timed, each as the median of
interleaved repeats:

    setup      CircuitSetup: the corrupt forward caching every source (the ablated values)
    eap        EAP on a fresh setup: its clean forward (which also records the clean sources) + backward
    eap_total  setup + eap: everything EAP needs (issue target: <= 3 forward-equivalents)
    eap_ig     EAP-IG over inputs, 5 steps (after setup)
    circuit    the engine evaluating one circuit (half the edges ablated), one forward

Peak memory: the process's max RSS growth while running EAP (ru_maxrss, so an upper bound).
auto-circuit / EAP-IG side-by-side is not in this file yet (see the circuits report).

    python bench/bench_circuits.py [--quick]      -> bench/results/circuits.json
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
from mechscope.circuits.attribution import eap, eap_ig_inputs  # noqa: E402


def logit_diff(answer_logits, prompt_index):
    return answer_logits[:, 1] - answer_logits[:, 2]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="4 layers, fewer repeats")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
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
