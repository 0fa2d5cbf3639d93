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
exact edge patching, over all edges, over the top-k edges by |exact| and over the edges exact
patching itself resolves (|mean effect| > 3 standard errors over the prompts); against exact
denoising (the corrupt run with one edge clean); the oracle's own split-half Spearman (even against
odd prompts); and the normalised faithfulness of each method's top 10% of edges. No setting is chosen from these numbers: the methods run at their
defaults (EAP-IG: 5 steps over the inputs, as in Hanna et al. 2024).

    python bench/bench_circuits.py [--quick]      -> bench/results/circuits.json
    python bench/bench_circuits.py --agreement    -> bench/results/circuits_agreement.json
    python bench/bench_circuits.py --agreement --qkv   -> bench/results/circuits_agreement_qkv.json
    python bench/bench_circuits.py --agreement --model organism:tiny-llama-base  -> circuits_agreement_tiny-llama-base.json
    python bench/bench_circuits.py --agreement --model organism:tiny-llama       -> circuits_agreement_tiny-llama.json
    python bench/bench_circuits.py --vs-auto-circuit /tmp/acpkgs   -> bench/results/circuits_vs_auto_circuit.json
    python bench/bench_circuits.py --vs-eap-ig /tmp/eapig/src      -> bench/results/circuits_vs_eap_ig.json

`--vs-auto-circuit DIR`: auto-circuit 1.0.1 (installed with `pip install --target DIR --no-deps
auto-circuit ordered-set vscode-tqdm attrs`; its pins want TransformerLens < 3 and kaleido 0.2.1, so it
is not a bench extra) on the same HF GPT-2 weights as a TransformerLens twin, same prompts, one
process. Two small shims let it import under TransformerLens 3 (the KV-cache class was renamed;
`blobfile` is only used to download SAEs). Its mask-gradient scores at mask 0 are EAP with loss
-logit_diff and per-head attention destinations: summed over the receiving heads of a layer and
negated they are mechscope's EAP scores. ACDC is compared on a 2-layer model at one tau (KL, 0.01).
Measured (2 shared CPU cores, loaded): EAP on GPT-2 4x768, batch 8 x 32 tokens: max rel diff 9e-6,
mechscope 3.0 s vs auto-circuit 41 s (13.7x); ACDC 2x128: 0.62 s vs 10.4 s (16.8x; 21 vs 26 edges).
The 12-layer run was killed for memory on the shared 24 GB machine (auto-circuit took 214 s per EAP
pass before that), so the default 12-layer side by side is unmeasured here.

`--vs-eap-ig DIR`: hannamw/EAP-IG (DIR is its src/ folder, e.g. ``git archive HEAD src/eap | tar -x
-C /tmp/eapig``, kept outside this repository; a COMMIT file there is reported) on the same HF
weights as a TransformerLens twin with split q/k/v inputs, same 8 x 16 token prompts, one process:
a random GPT-2 (2 layers, d_model 128, 4 heads) and a random LLaMA with grouped-query attention (2
layers, d_model 128, 4 heads, 2 kv heads; the twin ungroups k / v as EAP-IG requires). Shims:
tensors it allocates with device='cuda' are made on the CPU, its tokenizer step takes token
tensors, matplotlib (graph drawing only) may be absent. Its EAP, EAP-IG-inputs (5 steps) and (GPT-2)
exact scores go through its own JSON file (`Graph.to_json`) into `from_eapig(qkv=True)`, which
sums LLaMA's ungrouped k / v edges onto kv heads, and are compared entry for entry with
mechscope's split graph; EAP / EAP-IG summed over each layer's q/k/v destinations against
mechscope's merged graph; and (GPT-2) mechscope's scores written by `to_eapig` load in EAP-IG's
`Graph.from_json` unchanged. Times: one run each after a warm-up, mechscope's including its
CircuitSetup (the corrupt forward). Measured (2 shared CPU cores, loaded; EAP-IG 795f560,
TransformerLens 3.9): GPT-2 max rel diff EAP 1.7e-6, EAP-IG 3.6e-6, exact 5.7e-6, heads summed vs
merged 1.7e-6 / 3.1e-6; LLaMA-GQA EAP 1.7e-6, EAP-IG 2.7e-6, summed 2.5e-6 / 1.3e-6; our files in
EAP-IG's loader: identical scores. mechscope took 6-16x less time (over 3-4 runs on the shared
machine: GPT-2 EAP 6.6-10.3x, EAP-IG 6.3-8.1x, exact 10.5-16.3x; LLaMA EAP 6.6-9.8x, EAP-IG 6.2-7.0x).
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


def agreement(n_prompts: int = 64, qkv: bool = False, model_name: str = "organism:tiny-gpt2") -> None:
    from scipy.stats import spearmanr

    import mechscope
    from mechscope.circuits.attribution import exact_denoising, single_edge_effects
    from mechscope.circuits.engine import mean_metric
    from mechscope.circuits.selection import top_n
    from mechscope.tasks import get_task

    model = mechscope.load(model_name)
    setup = CircuitSetup.from_task(model, get_task(model, "ioi", n_prompts=n_prompts, seed=0), ablation="patching",
                                   qkv=qkv)
    g = setup.graph
    per_prompt = single_edge_effects(setup)                               # [n_edges n]: exact noising
    noising = per_prompt.mean(1)
    stderr = per_prompt.std(1) / n_prompts ** 0.5
    resolved = noising.abs() > 3 * stderr                                 # edges the oracle itself resolves
    halves = [per_prompt[:, i::2].mean(1) for i in (0, 1)]
    denoising = g.to_edge_vector(exact_denoising(setup))
    variants = {"eap": eap(setup)}
    for steps in (5, 20, 50):
        variants[f"eap-ig-inputs-{steps}"] = eap_ig_inputs(setup, steps)
        variants[f"eap-ig-activations-{steps}"] = eap_ig_activations(setup, steps)
    order = noising.abs().argsort(descending=True)
    ends = mean_metric(setup, torch.stack([g.full(), g.empty()]))

    def faithfulness_top(scores, fraction=0.1):
        value = mean_metric(setup, top_n(g, scores, round(fraction * g.n_edges)))[0]
        return float((value - ends[1]) / (ends[0] - ends[1]))

    def rank(a, b):
        return float(spearmanr(a, b).statistic)

    rows = {}
    for name, scores in variants.items():
        v = g.to_edge_vector(scores)
        rows[name] = {"spearman_all_edges": rank(v, noising),
                      "spearman_abs": rank(v.abs(), noising.abs()),
                      "pearson": float(torch.corrcoef(torch.stack([v, noising]))[0, 1]),
                      **{f"spearman_top{k}": rank(v[order[:k]], noising[order[:k]]) for k in (10, 20, 50)},
                      "spearman_resolved_edges": rank(v[resolved], noising[resolved]),
                      "spearman_vs_denoising": rank(v, denoising),
                      "faithfulness_top10pct": faithfulness_top(scores)}
    q = noising.abs().quantile(torch.tensor([0.5, 0.9, 1.0])).tolist()
    payload = {"model": model_name, "task": "ioi", "n_prompts": n_prompts, "qkv": qkv, "n_edges": g.n_edges,
               "abs_exact_quantiles": {"median": q[0], "p90": q[1], "max": q[2]},
               "resolved_edges": int(resolved.sum()),
               "exact_split_half_spearman": rank(*halves),
               "exact_noising_vs_denoising": {"spearman_all_edges": rank(noising, denoising),
                                              "spearman_resolved_edges": rank(noising[resolved], denoising[resolved]),
                                              "faithfulness_top10pct": faithfulness_top(g.from_edge_vector(denoising))},
               "variants": rows, "targets": {"spearman_eap_ig_exact": 0.9}}
    suffix = "" if model_name == "organism:tiny-gpt2" else "_" + model_name.split(":")[-1].replace("/", "_")
    print(write(("circuits_agreement_qkv" if qkv else "circuits_agreement") + suffix, payload))
    print({k: v for k, v in payload.items() if k not in ("variants", "targets")})
    for name, row in rows.items():
        print(f"{name:26s}", {k: round(v, 3) for k, v in row.items()})


def _import_auto_circuit(path: str):
    import types

    import transformer_lens as tl

    sys.path.append(path)
    if not hasattr(tl, "HookedTransformerKeyValueCache"):            # TransformerLens 3 renamed it
        tl.HookedTransformerKeyValueCache = tl.TransformerLensKeyValueCache
        shim = types.ModuleType("transformer_lens.past_key_value_caching")
        shim.HookedTransformerKeyValueCache = tl.TransformerLensKeyValueCache
        sys.modules.setdefault("transformer_lens.past_key_value_caching", shim)
    try:
        import blobfile  # noqa: F401
    except ImportError:                                                # only used to download SAEs
        sys.modules["blobfile"] = types.SimpleNamespace(BlobFile=None)
    from auto_circuit.data import PromptDataLoader, PromptDataset
    from auto_circuit.prune_algos.ACDC import acdc_prune_scores
    from auto_circuit.prune_algos.mask_gradient import mask_gradient_prune_scores
    from auto_circuit.utils.graph_utils import patchable_model
    return PromptDataLoader, PromptDataset, acdc_prune_scores, mask_gradient_prune_scores, patchable_model


def _ours_from_auto_circuit(g, model_ac, prune_scores) -> torch.Tensor:
    """auto-circuit's per-head-destination scores, merged onto mechscope's graph: [n_src n_dst]."""
    src_at = {n: i for i, n in enumerate(g.sources)}
    dst_at = {n: i for i, n in enumerate(g.destinations)}

    def node(name: str, dest: bool) -> str:
        if name in ("Resid Start", "Resid End"):
            return "input" if name == "Resid Start" else "logits"
        if name.startswith("MLP "):
            return f"m{name.split()[1]}"
        layer, head = name[1:].split(".")[:2]
        return f"a{layer}" if dest else f"a{layer}.h{head}"

    out = torch.zeros(g.n_src, g.n_dst, dtype=torch.float64)
    for e in model_ac.edges:
        value = prune_scores[e.dest.module_name][e.patch_idx]
        out[src_at[node(e.src.name, False)], dst_at[node(e.dest.name, True)]] += float(value)
    return out


def _token_pairs(batch: int, seq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random clean prompts [batch seq] and corrupt ones with their first half replaced."""
    gen = torch.Generator().manual_seed(0)
    clean = torch.randint(3, 50257, (batch, seq), generator=gen)
    corrupt = clean.clone()
    corrupt[:, : seq // 2] = torch.randint(3, 50257, (batch, seq // 2), generator=gen)
    return clean, corrupt


def _twins(n_layers: int, d_model: int, seq: int, *, n_heads: int | None = None, split_qkv: bool = False):
    """(mechscope model, TransformerLens twin with the hooks EAP tools need) on one random GPT-2."""
    from bench_hooked import transformer_lens_twin

    hf = gpt2_small(n_layers, d_model, n_ctx=max(64, seq), n_heads=n_heads)
    ours = HookedModel.from_hf(hf, _NoTokenizer(), spec=f"random gpt2 {n_layers}x{d_model}")
    tl_model = transformer_lens_twin(hf)
    tl_model.set_use_attn_result(True)
    if split_qkv:
        tl_model.set_use_split_qkv_input(True)
    else:
        tl_model.set_use_attn_in(True)
    tl_model.set_use_hook_mlp_in(True)
    return ours, tl_model


def _side_by_side(auto_circuit, label: str, n_layers: int, d_model: int, batch: int, seq: int) -> dict:
    import time

    from mechscope.circuits import acdc

    loader_cls, dataset_cls, ac_acdc, ac_mask_gradient, patchable = auto_circuit
    ours, tl_model = _twins(n_layers, d_model, seq)
    clean, corrupt = _token_pairs(batch, seq)
    data = dataset_cls(clean, corrupt, [torch.tensor([1])] * batch, [torch.tensor([2])] * batch)
    loader = loader_cls(data, seq_len=None, diverge_idx=0, batch_size=batch, shuffle=False)
    model_ac = patchable(tl_model, factorized=True, slice_output="last_seq", separate_qkv=False,
                         device=torch.device("cpu"))

    def setup():
        return CircuitSetup.from_tokens(ours, clean, corrupt, metric=logit_diff)

    if label == "eap":
        contenders = {"mechscope": lambda: eap(setup()),
                      "auto_circuit": lambda: ac_mask_gradient(model_ac, loader, None, grad_function="logit",
                                                               answer_function="avg_diff", mask_val=0.0)}
    else:
        contenders = {"mechscope": lambda: acdc(setup(), tau=0.01),
                      "auto_circuit": lambda: ac_acdc(model_ac, loader, None, tao_exps=[-2], tao_bases=[1])}
    timing, results = {}, {}
    for name, fn in contenders.items():
        fn()                                                             # warm-up
        start = time.perf_counter()
        results[name] = fn()
        timing[name] = time.perf_counter() - start
    g = setup().graph
    row = {"model": f"gpt2 {n_layers}x{d_model}", "batch": batch, "seq": seq,
           "mechscope_s": timing["mechscope"], "auto_circuit_s": timing["auto_circuit"],
           "speedup": timing["auto_circuit"] / timing["mechscope"],
           "edges_mechscope": g.n_edges, "edges_auto_circuit": len(model_ac.edges)}
    if label == "eap":
        merged = -_ours_from_auto_circuit(g, model_ac, results["auto_circuit"])
        mine = results["mechscope"].double()
        row["max_rel_diff"] = float((mine - merged).abs().max() / mine.abs().max())
    return row


def vs_auto_circuit(path: str, quick: bool, batch: int, seq: int) -> None:
    auto_circuit = _import_auto_circuit(path)
    payload = {"auto_circuit_path": path}
    for label, n_layers, d_model in (("eap", 4 if quick else 12, 768), ("acdc", 2, 128)):
        payload[label] = row = _side_by_side(auto_circuit, label, n_layers, d_model, batch, seq)
        print(label, {k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
    payload["targets"] = {"eap_max_rel_diff": 1e-4, "speedup": 3.0}
    print(write("circuits_vs_auto_circuit", payload))


class _OnCpu:
    """torch, except that tensors EAP-IG allocates with device='cuda' are made on the CPU."""

    def __getattr__(self, name):
        return getattr(torch, name)

    @staticmethod
    def zeros(*shape, device=None, **kw):
        return torch.zeros(*shape, **kw)


def _import_eap_ig(path: str):
    """hannamw/EAP-IG's `eap` package from DIR (its src/ folder), made to run on CPU on token tensors."""
    import importlib
    import types

    sys.path.append(path)
    for name in ("matplotlib", "matplotlib.cm"):                        # only its graph drawing uses them
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = types.ModuleType(name)
    import eap.attribute
    import eap.evaluate
    from eap.graph import Graph as EapGraph

    def tokenize_plus(model, tokens, max_length=None):                 # it tokenizes strings; we pass tokens
        tokens = torch.as_tensor(tokens)
        mask = torch.ones_like(tokens)
        return tokens, mask, mask.sum(1), tokens.shape[1]

    for module in (eap.attribute, eap.evaluate):
        module.torch = _OnCpu()
        module.tokenize_plus = tokenize_plus
    return eap.attribute.attribute, EapGraph


def _llama_twins(n_layers: int, d_model: int, n_heads: int, n_kv_heads: int, seq: int):
    """(mechscope model, TransformerLens twin) on one random LLaMA with grouped-query attention; the twin
    has the hooks EAP-IG needs, with k / v inputs ungrouped (one per query head) as EAP-IG requires."""
    from transformer_lens import HookedTransformer, HookedTransformerConfig
    from transformer_lens.pretrained.weight_conversions.llama import convert_llama_weights
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    c = LlamaConfig(num_hidden_layers=n_layers, hidden_size=d_model, num_attention_heads=n_heads,
                    num_key_value_heads=n_kv_heads, intermediate_size=3 * d_model, vocab_size=50257,
                    max_position_embeddings=max(64, seq))
    hf = LlamaForCausalLM(c).eval()
    d_head = d_model // n_heads
    cfg = HookedTransformerConfig(n_layers=n_layers, d_model=d_model, d_head=d_head, n_heads=n_heads,
                                  d_mlp=3 * d_model, d_vocab=50257, n_ctx=max(64, seq), eps=c.rms_norm_eps,
                                  act_fn="silu", n_key_value_heads=n_kv_heads, normalization_type="RMS",
                                  positional_embedding_type="rotary", rotary_adjacent_pairs=False, rotary_dim=d_head,
                                  rotary_base=c.rope_parameters["rope_theta"], final_rms=True, gated_mlp=True,
                                  device="cpu")
    tl_model = HookedTransformer(cfg)
    tl_model.load_state_dict(convert_llama_weights(hf, cfg), strict=False)
    tl_model.eval()
    for setting in ("use_attn_result", "use_split_qkv_input", "use_hook_mlp_in", "ungroup_grouped_query_attention"):
        getattr(tl_model, f"set_{setting}")(True)
    return HookedModel.from_hf(hf, _NoTokenizer(), spec=f"random llama {n_layers}x{d_model}"), tl_model


def _vs_eap_ig_on(eap_ig, ours, tl_model, methods: dict, clean, corrupt, steps: int) -> dict:
    """Per method: both tools' times and the largest difference of their split scores (EAP-IG's read
    through its own JSON file and `from_eapig`, which sums a grouped-query model's ungrouped k / v
    inputs onto kv heads), and of EAP-IG's heads summed against mechscope's merged graph."""
    import json
    import tempfile
    import time

    from mechscope.circuits import from_eapig, to_eapig

    eap_attribute, EapGraph = eap_ig
    loader = [(clean, corrupt, None)]

    def per_prompt(logits, clean_logits, input_lengths, label):         # exact averages what this returns
        return logits[:, -1, 1] - logits[:, -1, 2]

    def summed(logits, clean_logits, input_lengths, label):             # attributions divide by the count
        return per_prompt(logits, clean_logits, input_lengths, label).sum()

    def theirs(method: str) -> torch.Tensor:
        graph = EapGraph.from_model(tl_model)
        eap_attribute(tl_model, graph, loader, per_prompt if method == "exact" else summed, method, ig_steps=steps,
                      quiet=True)
        with tempfile.TemporaryDirectory() as tmp:
            graph.to_json(f"{tmp}/graph.json")
            data = json.loads(Path(f"{tmp}/graph.json").read_text())
        return from_eapig(data, qkv=True, n_kv_heads=ours.cfg.n_kv_heads)[1]

    def mine(method, qkv: bool = True) -> torch.Tensor:
        return method(CircuitSetup.from_tokens(ours, clean, corrupt, metric=logit_diff, qkv=qkv))

    graph = CircuitSetup.from_tokens(ours, clean, corrupt, metric=logit_diff, qkv=True).graph
    rows = {}
    for name, method in methods.items():
        timing, scores = {}, {}
        for who, fn in (("mechscope", lambda m=method: mine(m)), ("eap_ig", lambda n=name: theirs(n))):
            fn()                                                             # warm-up
            start = time.perf_counter()
            scores[who] = fn().double()
            timing[who] = time.perf_counter() - start
        a, b = scores["mechscope"], scores["eap_ig"]
        rows[name] = {"mechscope_s": timing["mechscope"], "eap_ig_s": timing["eap_ig"],
                      "speedup": timing["eap_ig"] / timing["mechscope"],
                      "max_rel_diff_split": float((a - b).abs().max() / b.abs().max()),
                      "max_abs_score": float(b.abs().max()), "n_edges_split": graph.n_edges}
        if name != "exact":   # first-order scores are additive: EAP-IG's heads summed = our merged graph's
            merged_ours = mine(method, qkv=False).double()
            rows[name]["max_rel_diff_heads_summed_vs_merged"] = float(
                (graph.merge(b) - merged_ours).abs().max() / merged_ours.abs().max())
        if ours.cfg.n_kv_heads == ours.cfg.n_heads:   # our file, read by EAP-IG's loader, gives our scores
            with tempfile.TemporaryDirectory() as tmp:
                Path(f"{tmp}/ours.json").write_text(json.dumps(to_eapig(graph, a, d_model=ours.cfg.d_model)))
                loaded = EapGraph.from_json(f"{tmp}/ours.json").scores.double()
            rows[name]["max_abs_diff_our_file_in_eap_ig"] = float((loaded - a * graph.allowed).abs().max())
        print(name, {k: round(v, 8) for k, v in rows[name].items()}, flush=True)
    return rows


def vs_eap_ig(path: str, n_layers: int = 2, d_model: int = 128, n_heads: int = 4, batch: int = 8, seq: int = 16,
              steps: int = 5) -> None:
    """EAP-IG's EAP / EAP-IG-inputs / exact scores (split q/k/v destinations) against mechscope's on the
    same HF weights (EAP-IG through a TransformerLens twin), same prompts, one process: GPT-2, and LLaMA
    with grouped-query attention (n_heads / 2 kv heads; EAP and EAP-IG)."""
    eap_ig = _import_eap_ig(path)
    clean, corrupt = _token_pairs(batch, seq)
    ig = lambda setup: eap_ig_inputs(setup, steps)  # noqa: E731
    ours, tl_model = _twins(n_layers, d_model, seq, n_heads=n_heads, split_qkv=True)
    rows = _vs_eap_ig_on(eap_ig, ours, tl_model, {"EAP": eap, "EAP-IG-inputs": ig, "exact": exact},
                         clean, corrupt, steps)
    ours, tl_model = _llama_twins(n_layers, d_model, n_heads, n_heads // 2, seq)
    gqa = _vs_eap_ig_on(eap_ig, ours, tl_model, {"EAP": eap, "EAP-IG-inputs": ig}, clean, corrupt, steps)
    payload = {"eap_ig_path": path, "eap_ig_commit": _commit_of(path),
               "model": f"random gpt2 {n_layers}x{d_model}, {n_heads} heads", "batch": batch, "seq": seq,
               "ig_steps": steps, "methods": rows,
               "gqa_model": f"random llama {n_layers}x{d_model}, {n_heads} heads, {n_heads // 2} kv heads",
               "gqa_methods": gqa, "targets": {"max_rel_diff": 1e-4}}
    print(write("circuits_vs_eap_ig", payload))


def _commit_of(path: str) -> str | None:
    marker = Path(path) / "COMMIT"
    return marker.read_text().strip() if marker.exists() else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="4 layers, fewer repeats")
    parser.add_argument("--agreement", action="store_true", help="EAP / EAP-IG variants against exact patching")
    parser.add_argument("--vs-auto-circuit", metavar="DIR", help="side by side with auto-circuit installed in DIR")
    parser.add_argument("--qkv", action="store_true", help="with --agreement: per-head q/k/v destinations")
    parser.add_argument("--model", default="organism:tiny-gpt2", help="with --agreement: the model (IOI vocabulary)")
    parser.add_argument("--vs-eap-ig", metavar="DIR", help="side by side with hannamw/EAP-IG's src/ folder DIR")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seq", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.agreement:
        agreement(qkv=args.qkv, model_name=args.model)
        return
    if args.vs_eap_ig:
        vs_eap_ig(args.vs_eap_ig, batch=args.batch)
        return
    if args.vs_auto_circuit:
        vs_auto_circuit(args.vs_auto_circuit, args.quick, args.batch, args.seq)
        return
    n_layers = 4 if args.quick else 12
    model = HookedModel.from_hf(gpt2_small(n_layers, 768), _NoTokenizer(), spec=f"random gpt2 {n_layers}x768")
    clean, corrupt = _token_pairs(args.batch, args.seq)

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
