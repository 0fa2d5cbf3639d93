"""C15: later features are AND / OR gates of earlier ones.

Experiment: TopK SAEs (k = d_model/16, 4x expansion) on the residual stream after two adjacent
blocks (the middle pair quick, every pair full), trained together on the model's text. On held-out
text (BOS position dropped) each later latent that fires on 0.5-50% of tokens is a child; its two
parents are the earlier latents that co-activate with it best; the table P(child on | a, b) is
classified as pass-through, AND, OR or other (mechscope.graphs.gates). The key number is the share
of determined children that are AND or OR gates; pass-through (a feature carried forward unchanged)
is counted as explained but not as a gate.

Null: the re-initialised twin, read the same way: a random network's residual stream also carries
features forward and its SAE latents co-activate by chance, so gates must exceed the twin's share.

The absolute thresholds are read against the 95% bootstrap interval of the share over children: with
~200 children (the organisms, quick) the interval is about ±0.05 wide, and on tiny-llama the point share
was 0.21 / 0.16 / 0.23 under seeds 0 / 1 / 2, so a point reading against 20% flipped with the seed.

Cost: 2 SAEs (quick; n_layers full) x budget.train_steps steps of 256 tokens, on model and twin.
"""

from __future__ import annotations

import torch

from mechscope.claims.base import Budget, Measurement
from mechscope.data.activation_store import capture_activations
from mechscope.data.text import eval_tokens
from mechscope.dictionary import SAEConfig, create_sae
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import pair_batches
from mechscope.errors import NotApplicableError
from mechscope.graphs.gates import KINDS, classify_gates
from mechscope.stats import rounded_ci

ID = "C15"
NULL = "twin"
READS = ("share_gates", "share_gates_ci95", "share_explained", "n_children")
NULL_READS = ("share_gates",)

MIN_SHARE, MARGIN, FLOOR, MIN_CHILDREN = 0.2, 0.1, 0.05, 20
MIN_FREQ, MAX_FREQ = 0.005, 0.5
RULE = (f"later residual SAE latents (firing on {MIN_FREQ:.1%}-{MAX_FREQ:.0%} of tokens) against their two best "
        f"co-activating earlier latents: inconclusive with fewer than {MIN_CHILDREN} classifiable children; "
        f"supported if ≥ {MIN_SHARE:.0%} of them are AND or OR gates (the whole 95% bootstrap interval over children) "
        f"and that share exceeds the re-initialised twin's by ≥ {MARGIN:.0%}; not supported if < {FLOOR:.0%} are "
        "gates (the whole interval) or the share does not exceed the twin's; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    share, (low, high) = metrics["share_gates"], metrics["share_gates_ci95"]
    if metrics["n_children"] < MIN_CHILDREN:
        return "inconclusive"
    if high < FLOOR or (null is not None and share <= null["share_gates"]):
        return "not supported"
    if null is not None and low >= MIN_SHARE and share - null["share_gates"] >= MARGIN:
        return "supported"
    return "inconclusive"


def measure(model, budget: Budget) -> Measurement:
    n_layers = model.cfg.n_layers
    if n_layers < 2:
        raise NotApplicableError("C15 needs two adjacent blocks; this model has one")
    mid = max(1, n_layers // 2)
    pairs = [(mid - 1, mid)] if budget.name == "quick" else [(layer, layer + 1) for layer in range(n_layers - 1)]
    hooks = sorted({f"blocks.{layer}.hook_resid_post" for pair in pairs for layer in pair})
    seq_len = min(budget.seq_len, model.cfg.n_ctx)
    train = eval_tokens(model, seq_len=seq_len, n_sequences=8 * budget.n_sequences, seed=budget.seed + 1,
                        split="train")
    held = eval_tokens(model, seq_len=seq_len, n_sequences=4 * budget.n_sequences, seed=budget.seed, split="held_out")

    def harvest(tokens):
        parts = [capture_activations(model, b, hooks, drop_first_position=True) for b in tokens.split(16)]
        return {h: torch.cat([p[h] for p in parts]) for h in hooks}

    d = model.cfg.d_model
    saes = {h: create_sae(SAEConfig(d_in=d, expansion_factor=4, k=max(4, d // 16), hook_name=h, seed=budget.seed,
                                    dead_after_tokens=20_000)) for h in hooks}
    SAETrainer(saes, TrainerConfig(steps=budget.train_steps, lr=1e-3, warmup_steps=10, show_progress=False)).fit(
        pair_batches(harvest(train), 256, seed=budget.seed))
    acts = harvest(held)
    with torch.no_grad():
        on = {h: saes[h].eval().encode(acts[h]) > 0 for h in hooks}
    analyses, per_pair = [], {}
    for early, late in pairs:
        child_on = on[f"blocks.{late}.hook_resid_post"]
        freq = child_on.float().mean(0)
        children = ((freq >= MIN_FREQ) & (freq <= MAX_FREQ)).nonzero().squeeze(-1)
        result = classify_gates(child_on[:, children], on[f"blocks.{early}.hook_resid_post"])
        analyses.append(result)
        per_pair[f"{early}->{late}"] = result.counts()
    kinds = [k for a in analyses for k in a.kinds]
    determined = [k for k in kinds if k != "undetermined"]
    counts = {k: kinds.count(k) for k in KINDS}
    is_gate = [float(k in ("AND", "OR")) for k in determined]
    share_gates = sum(is_gate) / len(determined) if determined else float("nan")
    share_explained = sum(k != "other" for k in determined) / len(determined) if determined else float("nan")
    return Measurement(
        metrics={"share_gates": round(share_gates, 4), "share_gates_ci95": rounded_ci(is_gate, seed=budget.seed),
                 "share_explained": round(share_explained, 4),
                 "n_children": len(determined), "counts": counts, "per_layer_pair": per_pair,
                 "held_out_tokens": int(acts[hooks[0]].shape[0]), "train_steps": budget.train_steps},
        key_metric="share_gates",
        evidence=(f"Of {len(determined)} classifiable later latents, {counts['AND']} are AND and {counts['OR']} OR gates "
                  f"of their two best co-activating earlier latents ({share_gates:.0%}), {counts['pass-through']} pass "
                  f"one parent through and {counts['other']} fit no gate ({share_explained:.0%} explained)."),
        method=(f"TopK SAEs on the residual stream after blocks {sorted({x for p in pairs for x in p})}, trained "
                f"{budget.train_steps} steps on {train.numel()} tokens; on/off tables on {acts[hooks[0]].shape[0]} "
                "held-out tokens; gates matched within 0.2 per cell, cells seen ≥ 5 times."),
        figures=[a.figure() for a in analyses],
    )
