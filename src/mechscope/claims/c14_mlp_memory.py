"""C14: MLPs store facts as key-value memories, distributed over layers.

Experiment, on the facts the model is asked (an organism's planted facts, else generic capitals):
1. recall: top-1 accuracy on the fact prompts;
2. causal tracing (noised subject, 3x embedding std; MLP outputs restored over a window of layers):
   the mean indirect effect of the MLP at the subject's last token, per layer, and its peak;
3. values: the MLP output at the subject's last token projected on the vocabulary, read among the
   relation's possible answers (does what the MLP writes there name the answer?), per layer;
4. keys and values of the units that fire most there at the peak layer (figure);
5. ROME at the peak layer on counterfactual rewrites: efficacy and neighbourhood.

Null: the re-initialised twin, measured on the same prompts: it knows no fact, so tracing on it
shows how much indirect effect the method finds in a network that stores nothing (the edit scores
are reported for it too, but an edit can always be forced in; they are not read against it).

Cost: one traced forward per fact (batched restorations), E[kkᵀ] over 20 x n_sequences x seq_len
tokens, and one ROME fit (20 Adam steps on 11 prompts) per rewrite; model and twin.
"""

from __future__ import annotations

import torch

from mechscope.claims.base import Budget, Measurement
from mechscope.memory.covariance import key_covariance
from mechscope.memory.edit_metrics import edit_scores
from mechscope.memory.facts import candidate_facts, counterfactuals, recalled
from mechscope.memory.neurons import unit_keys_values
from mechscope.memory.prompts import encode, subject_span
from mechscope.memory.rome import RomeConfig, rome
from mechscope.memory.trace_summary import trace_facts
from mechscope.memory.tracing import TraceConfig

ID = "C14"
NULL = "twin"
READS = ("recall", "peak_mlp_effect", "peak_mlp_layer_is_interior", "rome_efficacy", "rome_neighbourhood")

MIN_RECALL, MIN_EFFECT, MARGIN, EFFICACY, NEIGHBOURHOOD = 0.5, 0.2, 0.1, 0.9, 0.9
RULE = (f"inconclusive if the model recalls < {MIN_RECALL:.0%} of the facts (top-1); supported if the MLP's "
        f"indirect effect at the subject's last token peaks at a layer before the last with a mean effect "
        f"≥ {MIN_EFFECT} that exceeds the re-initialised twin's peak by ≥ {MARGIN}, and ROME at that layer "
        f"reaches efficacy ≥ {EFFICACY} with neighbourhood ≥ {NEIGHBOURHOOD}; not supported otherwise")


def verdict(metrics: dict, null: dict | None) -> str:
    if metrics["recall"] < MIN_RECALL or null is None:
        return "inconclusive"
    located = (metrics["peak_mlp_effect"] >= MIN_EFFECT and metrics["peak_mlp_layer_is_interior"] >= 1
               and metrics["peak_mlp_effect"] - null["peak_mlp_effect"] >= MARGIN)
    edited = metrics["rome_efficacy"] >= EFFICACY and metrics["rome_neighbourhood"] >= NEIGHBOURHOOD
    return "supported" if located and edited else "not supported"


def value_decoding(model, facts) -> tuple[list[float], float]:
    """(per layer: fraction of facts whose MLP output at the subject's last token, bias removed, read
    through W_U ranks the fact's answer first among its relation's answers in `facts`; chance level)."""
    pools: dict[str, list[int]] = {}
    for f in facts:
        pools.setdefault(f.prompt.replace(f.subject, "{}"), []).append(model.to_single_token(f.target))
    hits = torch.zeros(model.cfg.n_layers)
    names = [f"blocks.{layer}.hook_mlp_out" for layer in range(model.cfg.n_layers)]
    for f in facts:
        ids, _, end = subject_span(model, f.prompt, f.subject)
        _, cache = model.run_with_cache(torch.tensor([ids]), names=names)
        pool = sorted(set(pools[f.prompt.replace(f.subject, "{}")]))
        answer = pool.index(model.to_single_token(f.target))
        for layer, name in enumerate(names):
            written = (cache[name][0, end - 1] - model.b_out[layer]).float() @ model.W_U[:, pool].float()
            hits[layer] += float(int(written.argmax()) == answer)
    chance = sum(1 / len(set(pools[f.prompt.replace(f.subject, "{}")])) for f in facts) / len(facts)
    return (hits / len(facts)).tolist(), chance


def measure(model, budget: Budget) -> Measurement:
    n = model.cfg.n_layers
    facts = candidate_facts(model, seed=budget.seed, known_only=False)[: min(budget.n_prompts, 16)]
    recall = sum(recalled(model, facts)) / len(facts)
    summary = trace_facts(model, facts, TraceConfig(kinds=("resid", "mlp", "attn"), n_samples=5, seed=budget.seed))
    mlp_last = summary.effects["mlp"][:, 2]
    layer, effect = summary.peak("mlp", "last subject")
    values, chance = value_decoding(model, facts)
    rewrites = counterfactuals(model, n=min(30, max(3, budget.n_prompts // 6)), seed=budget.seed, known_only=False)
    cov = key_covariance(model, layer, n_tokens=20 * budget.n_sequences * budget.seq_len, seed=budget.seed)
    scores: dict[str, list[float]] = {}
    for rw in rewrites:
        edit = rome(model, rw, layer, RomeConfig(seed=budget.seed), covariance=cov)
        try:
            for k, v in edit_scores(model, [rw]).items():
                scores.setdefault(k, []).append(v)
        finally:
            edit.undo()
    mean = {k: sum(v) / len(v) for k, v in scores.items()}
    ids, _, end = subject_span(model, facts[0].prompt, facts[0].subject)
    _, cache = model.run_with_cache(torch.tensor([encode(model, facts[0].prompt)]),
                                    names=f"blocks.{layer}.mlp.hook_post")
    top_units = cache[f"blocks.{layer}.mlp.hook_post"][0, end - 1].topk(3).indices.tolist()
    kv = unit_keys_values(model, layer, top_units, k=5, n_sequences=budget.n_sequences, seq_len=budget.seq_len,
                          seed=budget.seed)
    metrics = {
        "recall": recall, "n_facts": len(facts), "p_clean": summary.p_clean, "p_corrupt": summary.p_corrupt,
        "mlp_effect_last_subject_by_layer": mlp_last.tolist(),
        "mlp_effect_last_token_by_layer": summary.effects["mlp"][:, 5].tolist(),
        "resid_effect_last_subject_by_layer": summary.effects["resid"][:, 2].tolist(),
        "attn_effect_last_token_by_layer": summary.effects["attn"][:, 5].tolist(),
        "peak_mlp_layer": layer, "peak_mlp_effect": effect, "peak_mlp_layer_is_interior": int(layer < n - 1),
        "mlp_value_names_answer_by_layer": values,
        "mlp_value_chance": chance, "rome_layer": layer, "n_rewrites": len(rewrites),
        **{f"rome_{k}": v for k, v in mean.items()}, "trace_seconds": summary.seconds,
        "top_units_at_peak": top_units,
    }
    best_value = max(range(n), key=lambda i: values[i])
    evidence = (
        f"The model recalls {recall:.0%} of {len(facts)} facts. Restoring the MLP output at the subject's last "
        f"token brings back at most {effect:.2f} of the answer probability (layer {layer}; clean "
        f"{summary.p_clean:.2f}, noised {summary.p_corrupt:.2f}); at the last token the MLP effect peaks at "
        f"{float(summary.effects['mlp'][:, 5].max()):.2f}. What the MLP writes at the subject names the answer "
        f"among its relation's options for {values[best_value]:.0%} of facts at best (layer {best_value}; "
        f"chance {chance:.0%}). "
        f"ROME at layer {layer} on {len(rewrites)} rewrites: efficacy {mean.get('efficacy', float('nan')):.2f}, "
        f"paraphrase {mean.get('paraphrase', float('nan')):.2f}, neighbourhood "
        f"{mean.get('neighbourhood', float('nan')):.2f}.")
    return Measurement(
        metrics=metrics, key_metric="peak_mlp_effect", evidence=evidence,
        method=("Causal tracing (Meng et al. 2022) with the subject's token embeddings noised at 3x the "
                "embedding std (5 draws), restoring resid / MLP / attention outputs per (layer, position), MLP "
                "and attention over a window of n_layers // 5 layers; effects averaged over facts by token role. "
                "Values: the MLP output at the subject's last token read through W_U among the relation's "
                "answers. ROME at the peak MLP layer (k* over 10 sampled prefixes, v* by 20 Adam steps with KL "
                "and norm constraints, C = E[kkᵀ] over text) on counterfactual rewrites, each undone after "
                "scoring; scores as in CounterFact (P(new) > P(old); neighbours keep P(own) > P(new))."),
        figures=[summary.figure(), summary.traces[0].figure(), kv.figure()],
    )
