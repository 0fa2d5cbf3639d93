"""Attribution graphs side by side with circuit-tracer 0.5.0 (issue 19 acceptance): the same model, the
same transcoders, the same prompt and settings; adjacency max |delta| / max |A| after node matching,
replacement and completeness scores of both, wall time of each and the ratio.

circuit-tracer pins transformers<=4.57.3, so it runs in its own venv, outside the repo, as a subprocess
(bench/circuit_tracer_peer.py); the two sides exchange safetensors / JSON through a temp folder:

    python3 -m venv /work/venvs/ct
    /work/venvs/ct/bin/pip install torch==2.13.0          # first: the CPU build (a bare torch pulls CUDA)
    /work/venvs/ct/bin/pip install circuit-tracer==0.5.0  # its transformers / TransformerLens / nnsight pins
    OMP_NUM_THREADS=1 PYTHONPATH=src .venv/bin/python bench/bench_graph_vs_circuit_tracer.py \
        --peer-python /work/venvs/ct/bin/python

Without the peer venv it says so and exits 0 (nothing measured). The model is organism:tiny-gpt2 (GPT-2
architecture, 4 layers, d_model 128), handed to circuit-tracer as a HF folder that the peer converts
to a TransformerLens model offline. One BatchTopK transcoder per layer is trained with mechscope and
written in circuit-tracer's transcoder-set format as JumpReLU with its inference threshold (circuit-tracer
0.5.0's loader reads ReLU and JumpReLU only), so both sides compute the same activations.

Nodes are matched by key: features by (layer, position, latent), error nodes by (layer, position), token
nodes by position, logit nodes by token id; the adjacency of each side is reindexed onto the common
nodes before the difference. Targets: max |delta| <= 1e-4 * max |A|, scores equal within 1e-4.

Measured (bench/results/graph_vs_circuit_tracer.json; 300 training steps, 20 tokens, batch 64, 5 repeats,
one thread each on 2 shared cores): 1191 nodes on each side (1081 features), all matched; max |delta| =
1.9e-6 = 3.4e-7 * max |A|; replacement 0.8345494 / 0.8345494, completeness 0.9475555 / 0.9475554; the model's
logits in TransformerLens and in mechscope differ by 3.8e-6. With --max-feature-nodes 500
(--out bench/results/graph_vs_circuit_tracer_max500.json) both choose the same 500 features, same |delta|
(CPU median ratio 1.03 there). With --skip (transcoders with W_skip, which both sides keep in the linear
path; --out bench/results/graph_vs_circuit_tracer_skip.json): 1074 nodes matched, max |delta| = 5.1e-7 *
max |A|, scores within 6e-8, CPU median ratio 0.92. With --n-tokens 64 --repeats 3
(graph_vs_circuit_tracer_64tok.json): 3673 nodes matched, 3.1e-7 * max |A|, scores equal, CPU seconds
(median) 2.98 / 3.10 (ratio 0.96).
Time per graph: CPU seconds (median) 0.38 ours, 0.43 theirs (ratio 0.88); wall seconds, which other jobs
on the shared cores inflate, 0.62 / 0.88.

What had to change on our side to get there (each now a test that needs no peer): circuit-tracer drops
position 0 (the BOS it prepends) from the graph (no features there, error zeroed) - `attribute`'s
`zero_positions`; its TransformerLens `ln2.hook_normalized` is the norm's output before its weight and bias,
so transcoder sets are written with `mlp.hook_in`; its loader refuses TopK files. Edges are contracted as
circuit-tracer does (gradient at the MLP output . activation x decoder row; feature targets as encoder .
MLP input), which made ours 2.5x faster than the leaf-gradient version and changed no edge.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

import mechscope
from mechscope.data.text import eval_tokens
from mechscope.dictionary.circuit_tracer_format import save_circuit_tracer
from mechscope.dictionary.transcoder_training import TranscoderRun, train_mlp_transcoders
from mechscope.graphs.attribute import attribute
from mechscope.graphs.graph import AttributionGraph

PEER = Path(__file__).with_name("circuit_tracer_peer.py")


def node_keys(features: torch.Tensor, n_layers: int, n_pos: int, logit_tokens: list[int]) -> list[tuple]:
    """One hashable key per node, in graph order: features, errors, tokens, logits."""
    keys = [("feature", *f) for f in features.tolist()]
    keys += [("error", layer, p) for layer in range(n_layers) for p in range(n_pos)]
    keys += [("token", p) for p in range(n_pos)]
    keys += [("logit", t) for t in logit_tokens]
    return keys


def compare(ours: AttributionGraph, theirs: dict[str, torch.Tensor]) -> dict:
    """Match nodes by key and compare the adjacency matrices on the common nodes."""
    n_layers, n_pos = ours.n_layers, ours.n_pos
    their_features = theirs["active_features"][theirs["selected_features"]]
    our_keys = node_keys(ours.active_features, n_layers, n_pos, ours.logit_tokens)
    their_keys = node_keys(their_features, n_layers, n_pos, theirs["logit_tokens"].tolist())
    their_index = {k: i for i, k in enumerate(their_keys)}
    common = [k for k in our_keys if k in their_index]
    ours_i = torch.tensor([i for i, k in enumerate(our_keys) if k in their_index])
    theirs_i = torch.tensor([their_index[k] for k in common])
    a_ours = ours.adjacency[ours_i][:, ours_i].double()
    a_theirs = theirs["adjacency"][theirs_i][:, theirs_i].double()
    diff = (a_ours - a_theirs).abs()
    scale = float(a_theirs.abs().max())
    worst = int(diff.argmax())
    row, col = divmod(worst, diff.shape[1])
    only_ours = [k for k in our_keys if k not in their_index]
    only_theirs = [k for k in their_keys if k not in set(our_keys)]
    our_acts = dict(zip(our_keys, ours.activation_values.tolist(), strict=False))
    their_acts = dict(zip(their_keys, theirs["activation_values"][theirs["selected_features"]].tolist(), strict=False))
    act_diff = max((abs(our_acts[k] - their_acts[k]) for k in common if k[0] == "feature"), default=0.0)
    return {"n_nodes": {"mechscope": len(our_keys), "circuit_tracer": len(their_keys), "common": len(common)},
            "only_mechscope": [list(k) for k in only_ours[:20]], "n_only_mechscope": len(only_ours),
            "only_circuit_tracer": [list(k) for k in only_theirs[:20]], "n_only_circuit_tracer": len(only_theirs),
            "max_abs_adjacency": scale, "max_abs_delta": float(diff.max()),
            "max_abs_delta_over_max_abs": float(diff.max()) / scale,
            "worst_edge": {"target": list(common[row]), "source": list(common[col]),
                           "mechscope": float(a_ours[row, col]), "circuit_tracer": float(a_theirs[row, col])},
            "max_abs_activation_delta": act_diff,
            "logit_probability_max_delta": float((ours.logit_probabilities - theirs["logit_probabilities"]).abs().max())
            if ours.logit_tokens == theirs["logit_tokens"].tolist() else None}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--peer-python", type=Path, default=Path("/work/venvs/ct/bin/python"),
                    help="python of a venv with circuit-tracer==0.5.0 (see the module docstring)")
    ap.add_argument("--steps", type=int, default=300, help="training steps of the transcoders")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--expansion", type=int, default=8)
    ap.add_argument("--skip", action="store_true", help="transcoders with a skip connection (W_skip)")
    ap.add_argument("--n-tokens", type=int, default=20, help="prompt length, BOS included")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-feature-nodes", type=int, default=None)
    ap.add_argument("--repeats", type=int, default=5, help="timed attribution runs on each side")
    ap.add_argument("--keep", type=Path, default=None, help="keep the exchange folder here")
    ap.add_argument("--out", type=Path, default=Path("bench/results/graph_vs_circuit_tracer.json"))
    args = ap.parse_args()
    if not args.peer_python.exists():
        print(f"skipped: no circuit-tracer venv at {args.peer_python}; create it as the module docstring says "
              "(python3 -m venv ...; pip install torch==2.13.0; pip install circuit-tracer==0.5.0)")
        return
    torch.set_num_threads(1)
    model = mechscope.load("organism:tiny-gpt2")
    train = eval_tokens(model, seq_len=64, n_sequences=256, seed=1)
    prompt = eval_tokens(model, seq_len=args.n_tokens, n_sequences=1, seed=7)[0]
    start = time.perf_counter()
    tcs = train_mlp_transcoders(model, train, TranscoderRun(architecture="batch_topk", k=args.k,
                                                            expansion_factor=args.expansion, steps=args.steps,
                                                            skip_connection=args.skip, show_progress=False))
    train_s = time.perf_counter() - start

    folder = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="graph_vs_ct_"))
    folder.mkdir(parents=True, exist_ok=True)
    model.hf_model.save_pretrained(folder / "model")
    model.tokenizer.save_pretrained(folder / "tokenizer")
    save_circuit_tracer(tcs, folder / "transcoders")
    settings = {"batch_size": args.batch_size, "max_feature_nodes": args.max_feature_nodes, "max_n_logits": 10,
                "desired_logit_prob": 0.95}
    tok = model.tokenizer
    special = {name: getattr(tok, name) for name in ("bos_token", "eos_token", "pad_token", "unk_token")
               if getattr(tok, name, None)}
    (folder / "request.json").write_text(json.dumps({"tokens": prompt.tolist(), "repeats": args.repeats,
                                                     "special_tokens": special, "threads": 1, **settings}))
    ours_s, ours_cpu, graph = [], [], None
    for _ in range(args.repeats):
        start, cpu = time.perf_counter(), time.process_time()
        graph = attribute(model, tcs, prompt, show_progress=False, **settings)
        ours_s.append(time.perf_counter() - start)
        ours_cpu.append(time.process_time() - cpu)

    proc = subprocess.run([str(args.peer_python), str(PEER), str(folder)], capture_output=True, text=True,
                          env={"OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
                               "PATH": "/usr/bin:/bin"})
    if proc.returncode != 0:
        sys.exit(f"circuit-tracer peer failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    theirs = load_file(str(folder / "graph.safetensors"))
    their_meta = json.loads((folder / "graph.json").read_text())
    with torch.no_grad():
        clean = model(prompt[None])[0, -1]
    ours_scores = graph.scores()
    def median(xs):
        return sorted(xs)[len(xs) // 2]
    out = {"model": "organism:tiny-gpt2", "prompt_tokens": prompt.tolist(), "n_tokens": len(prompt),
           "transcoders": {"architecture": "batch_topk (written as JumpReLU)", "k": args.k,
                           "d_sae": args.expansion * model.cfg.d_model, "steps": args.steps, "skip": args.skip,
                           "train_seconds": train_s},
           "settings": settings, "peer_versions": their_meta["versions"],
           "model_logits_max_delta": float((clean - theirs["clean_logits"]).abs().max()),
           "comparison": compare(graph, theirs),
           "scores": {"mechscope": {"replacement": ours_scores[0], "completeness": ours_scores[1]},
                      "circuit_tracer": {"replacement": their_meta["replacement_score"],
                                         "completeness": their_meta["completeness_score"]}},
           # wall seconds, and CPU seconds of the one thread each side runs on (what other jobs on shared
           # cores disturb least); ratios of the medians and of the fastest runs
           "seconds": {"mechscope": ours_s, "circuit_tracer": their_meta["seconds"],
                       "median_ratio_ours_over_theirs": median(ours_s) / median(their_meta["seconds"]),
                       "best_ratio_ours_over_theirs": min(ours_s) / min(their_meta["seconds"])},
           "cpu_seconds": {"mechscope": ours_cpu, "circuit_tracer": their_meta["cpu_seconds"],
                           "median_ratio_ours_over_theirs": median(ours_cpu) / median(their_meta["cpu_seconds"]),
                           "best_ratio_ours_over_theirs": min(ours_cpu) / min(their_meta["cpu_seconds"])},
           "torch_threads": torch.get_num_threads(),
           "targets": {"max_abs_delta_over_max_abs": 1e-4, "score_delta": 1e-4}}
    out["scores"]["max_delta"] = max(abs(ours_scores[0] - their_meta["replacement_score"]),
                                     abs(ours_scores[1] - their_meta["completeness_score"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
