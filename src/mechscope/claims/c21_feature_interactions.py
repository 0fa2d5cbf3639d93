"""C21: feature-to-feature interactions across layers are not sparse.

Experiment: one TopK transcoder per MLP (k = d_model/16, 8x expansion, at most budget.max_latents
latents) trained on the model's text, then attribution graphs (circuit-tracer semantics,
mechscope.graphs) on held-out prompts, each computing the rows of at most budget.max_graph_features
active features, the most influential first (circuit-tracer's max_feature_nodes). Read from
each graph: every active feature's out-degree (how many later-layer features take >= 1% of their
input from it) and the share of edges needed to carry 80% and 98% of the edge influence on the
logits (mechscope.graphs.sparsity). Sparse interactions need few edges; dense ones many.

Null: the re-initialised twin, read the same way (transcoders trained on its activations). A random
network's features interact with no structure, so "not sparse" must not be much sparser than it;
graphs whose inputs are mostly error nodes (completeness < 0.5) say nothing either way.

Cost: one harvest forward over 8 x n_sequences x seq_len tokens (and one over 4 held-out sequences for
the FVUs); n_layers transcoders x layer_steps steps of 256 tokens x d_model x min(8 d_model,
max_latents), where layer_steps is budget.train_steps, or on models deeper than budget.max_layers
max_layers x train_steps / n_layers (at least MIN_LAYER_STEPS): the training stops growing with depth
there (at the 30-layer 135M shape it was 349 of ~430 CPU s at 200 steps per layer); one attribution graph
per prompt (2 prompts of 16 tokens quick, doubled up to 8 while SPARSE_EDGES or DENSE_EDGES lies inside
the 95% bootstrap interval of the per-graph edges per node; 8 full), each a forward of 64 copies of the
prompt and one backward per 64 rows (the logits' and at most max_graph_features features'); on the model
and on the twin (whose run, reading edges per node alone, keeps the first read). The per-prompt spread is
wide: on tiny-gpt2, 8 prompts gave 1.26-2.79 edges per node around a mean of 1.64, so two graphs could land
either side of SPARSE_EDGES with the seed.
Measured on a random GPT-2-small shape (12 x 768, 1 thread): uncapped (6144 latents, 9216 active
features per graph) the claim did not finish in 34 min; a graph costs ~12 s plus 0.056 s per row.
At the quick budget (2048 latents, 512 features per graph) the model's side took 308 CPU s: transcoder
training 249 s, the FVUs 33 s when each was a spliced evaluation (now one harvest forward), two graphs 25 s.
"""

from __future__ import annotations

import numpy as np

from mechscope.claims.base import Budget, Measurement
from mechscope.data.text import eval_tokens
from mechscope.dictionary.transcoder_evaluate import transcoder_fvu
from mechscope.dictionary.transcoder_training import TranscoderRun, train_mlp_transcoders
from mechscope.graphs.attribute import attribute
from mechscope.graphs.sparsity import interaction_sparsity
from mechscope.stats import rounded_ci, threshold_inside

ID = "C21"
NULL = "twin"
READS = ("edges_80_per_node", "edges_80_per_node_ci95", "median_out_degree", "completeness_score")
NULL_READS = ("edges_80_per_node",)

DENSE_EDGES, SPARSE_EDGES = 3.0, 1.5
MIN_OUT_DEGREE, MIN_COMPLETENESS = 2.0, 0.5
NULL_RATIO_DENSE, NULL_RATIO_SPARSE = 0.5, 0.25
INPUT_SHARE = 0.01
EXPANSION = 8
GRAPHS = {"quick": 2, "full": 8}   # attribution graphs per model, by budget name (quick: the first read, see n_graphs)
MIN_LAYER_STEPS = 50               # transcoder steps per layer, at least, on deep models (layer_steps)
PROMPT_TOKENS = 16
RULE = (f"attribution graphs over per-layer transcoders: inconclusive if the graphs' completeness is < "
        f"{MIN_COMPLETENESS} (mostly error nodes); supported (not sparse) if carrying 80% of the edge influence "
        f"takes ≥ {DENSE_EDGES:g} edges per node (the whole 95% bootstrap interval over graphs), the median "
        f"feature out-degree (later features taking ≥ "
        f"{INPUT_SHARE:.0%} of their input from it) is ≥ {MIN_OUT_DEGREE:g}, and the edges per node are ≥ "
        f"{NULL_RATIO_DENSE}× the re-initialised twin's; not supported (sparse) if 80% takes < {SPARSE_EDGES:g} "
        f"edges per node (the whole interval) or < {NULL_RATIO_SPARSE}× the twin's; otherwise inconclusive")


def verdict(metrics: dict, null: dict | None) -> str:
    edges, degree = metrics["edges_80_per_node"], metrics["median_out_degree"]
    low, high = metrics["edges_80_per_node_ci95"]
    if metrics["completeness_score"] < MIN_COMPLETENESS:
        return "inconclusive"
    if high < SPARSE_EDGES or (null is not None and edges < NULL_RATIO_SPARSE * null["edges_80_per_node"]):
        return "not supported"
    if null is not None and low >= DENSE_EDGES and degree >= MIN_OUT_DEGREE \
            and edges >= NULL_RATIO_DENSE * null["edges_80_per_node"]:
        return "supported"
    return "inconclusive"


def layer_steps(n_layers: int, budget: Budget) -> int:
    """Steps each layer's transcoder trains: budget.train_steps, or on a model deeper than
    budget.max_layers the max_layers x train_steps steps of a max_layers-deep model shared by all its
    layers (at least MIN_LAYER_STEPS each), so the training does not grow with depth."""
    if budget.max_layers is None or n_layers <= budget.max_layers:
        return budget.train_steps
    return max(MIN_LAYER_STEPS, budget.max_layers * budget.train_steps // n_layers)


def n_graphs_for(budget: Budget) -> int:
    """The graphs read first: GRAPHS["full"] under `full`, GRAPHS["quick"] otherwise (doubled while unsettled)."""
    return GRAPHS["quick"] if budget.name == "quick" else GRAPHS["full"]


def settled(per_graph: list[float], seed: int = 0) -> bool:
    """True when neither absolute edge threshold lies inside the 95% bootstrap interval of the mean of the
    per-graph edges per node (the twin-relative ones are unknown while the model is measured)."""
    return not threshold_inside(per_graph, (SPARSE_EDGES, DENSE_EDGES), seed=seed)


def settled_graphs(model, transcoders, prompts, budget: Budget) -> tuple[list, list]:
    """Attribution graphs of prompts[0], prompts[1], ... and their sparsity readings: n_graphs_for(budget)
    of them, doubled (at most GRAPHS["full"]) until `settled`, as head_circuit.settled_baseline does with
    prompts. The twin's run (budget.reads = NULL_READS) keeps the first read: no absolute threshold is read
    from it. prompts: [n_prompts, prompt_len] token ids."""
    most = min(GRAPHS["full"], len(prompts))
    n_graphs = min(n_graphs_for(budget), most)
    rule_side = budget.reads_any(*(set(READS) - set(NULL_READS)))
    graphs, sparsity = [], []
    while True:
        for row in prompts[len(graphs):n_graphs]:
            graphs.append(attribute(model, transcoders, row, max_feature_nodes=budget.max_graph_features,
                                    show_progress=False))
            sparsity.append(interaction_sparsity(graphs[-1], INPUT_SHARE))
        if n_graphs >= most or not rule_side or settled([s.edges_80_per_node for s in sparsity], budget.seed):
            return graphs, sparsity
        n_graphs = min(2 * n_graphs, most)


def measure(model, budget: Budget) -> Measurement:
    seq_len = min(budget.seq_len, model.cfg.n_ctx)
    train = eval_tokens(model, seq_len=seq_len, n_sequences=8 * budget.n_sequences, seed=budget.seed + 1,
                        split="train")
    held_out = eval_tokens(model, seq_len=seq_len, n_sequences=budget.n_sequences, seed=budget.seed, split="held_out")
    steps = layer_steps(model.cfg.n_layers, budget)
    run = TranscoderRun(steps=steps, seed=budget.seed, show_progress=False,
                        d_sae=budget.latents(model.cfg.d_model, EXPANSION))
    tcs = train_mlp_transcoders(model, train, run)
    fvu = transcoder_fvu(tcs.values(), model, held_out[:4])
    prompt_len = min(PROMPT_TOKENS, seq_len)
    graphs, sparsity = settled_graphs(model, tcs, held_out[:, :prompt_len], budget)
    n_graphs = len(graphs)
    per_graph = [s.edges_80_per_node for s in sparsity]
    degrees = np.concatenate([s.out_degree.numpy() for s in sparsity]) if sparsity else np.zeros(0)
    scores = [g.scores() for g in graphs]
    share80 = float(np.mean([s.edge_share_80 for s in sparsity]))
    share98 = float(np.mean([s.edge_share_98 for s in sparsity]))
    per_node = float(np.mean(per_graph))
    median_degree = float(np.median(degrees)) if len(degrees) else float("nan")
    completeness = float(np.mean([c for _, c in scores]))
    metrics = {
        "edges_80_per_node": round(per_node, 3), "edges_80_per_node_ci95": rounded_ci(per_graph, seed=budget.seed),
        "edges_80_per_node_per_graph": [round(v, 3) for v in per_graph],
        "edge_share_80": round(share80, 4), "edge_share_98": round(share98, 4),
        "median_out_degree": median_degree, "mean_out_degree": round(float(degrees.mean()), 3) if len(degrees) else None,
        "replacement_score": round(float(np.mean([r for r, _ in scores])), 4),
        "completeness_score": round(completeness, 4),
        "n_features_per_graph": [g.n_features for g in graphs], "n_graphs": n_graphs, "prompt_tokens": prompt_len,
        "transcoder_fvu_per_layer": [round(v, 4) for v in fvu], "train_tokens": int(train.numel()),
        "train_steps": steps, "latents": run.d_sae, "max_graph_features": budget.max_graph_features,
    }
    explored = ("every active feature" if budget.max_graph_features is None
                else f"the {budget.max_graph_features} most influential active features")
    return Measurement(
        metrics=metrics, key_metric="edges_80_per_node",
        evidence=(f"Over {n_graphs} attribution graphs of {prompt_len}-token prompts ({sum(metrics['n_features_per_graph'])} "
                  f"active features), carrying 80% of the edge influence takes {per_node:.2f} edges per node "
                  f"({share80:.1%} of the edges; 98%: {share98:.1%}); the median feature feeds ≥ {INPUT_SHARE:.0%} of the input of "
                  f"{median_degree:g} later features. Graph completeness {completeness:.2f}; transcoder FVU by "
                  f"layer {', '.join(f'{v:.2f}' for v in fvu)}."),
        method=(f"TopK transcoders (k = d_model/16, {run.d_sae} latents) on every MLP, trained {steps} steps "
                f"on {train.numel()} tokens of the bundled text; attribution graphs with frozen attention and "
                "norms, direct effects between active features, error nodes, tokens and the top logits "
                f"(circuit-tracer semantics; {explored} per graph); out-degree at a 1% input share; edge "
                "influence as circuit-tracer prunes by."),
        figures=[graphs[0].figure()] if graphs else [],
    )
