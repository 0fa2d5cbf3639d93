"""`mechscope graph PROMPT`: the attribution graph of one prompt (Neuronpedia JSON + HTML view)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from mechscope.cli.common import DEVICE_OPT, DTYPE_OPT, MODEL_OPT, SEED_OPT, TEXT_OPT, load_model, text_tokens


def graph_cmd(
    prompt: str = typer.Argument(..., help="the text to attribute (its next-token prediction)"),
    model: str = MODEL_OPT,
    transcoders: Path = typer.Option(None, "--transcoders", help="folder of per-layer transcoders (L0, L1, ...) or "
                                     "one cross-layer transcoder (sae train --kind clt); default: train per-layer "
                                     "transcoders now on the bundled text"),
    save_transcoders_to: Path = typer.Option(None, "--save-transcoders", help="keep the transcoders trained here"),
    train_steps: int = typer.Option(300, help="training steps when transcoders are trained here"),
    k: int = typer.Option(0, help="TopK k of trained transcoders (0: d_model/16)"),
    json_path: Path = typer.Option(None, "--json", help="write the graph as Neuronpedia graph JSON here"),
    html_path: Path = typer.Option(None, "--html", help="write a self-contained HTML view here"),
    node_threshold: float = typer.Option(0.8, help="keep nodes carrying this share of the influence"),
    edge_threshold: float = typer.Option(0.98, help="keep edges carrying this share of the edge influence"),
    max_n_logits: int = typer.Option(10, help="at most this many logit targets"),
    desired_logit_prob: float = typer.Option(0.95, help="logit targets until their probability reaches this"),
    batch_size: int = typer.Option(64, help="targets per backward pass"),
    max_feature_nodes: int = typer.Option(None, help="keep at most this many features, the most influential on "
                                          "the logits (circuit-tracer's option; default: every active feature)"),
    text: list[Path] = TEXT_OPT,
    device: str = DEVICE_OPT, dtype: str = DTYPE_OPT, seed: int = SEED_OPT,
) -> None:
    """Attribution graph of PROMPT through per-layer or cross-layer transcoders (circuit-tracer semantics)."""
    from mechscope.dictionary.transcoder_format import load_transcoders, save_transcoders
    from mechscope.dictionary.transcoder_training import TranscoderRun, train_mlp_transcoders
    from mechscope.graphs.attribute import attribute
    from mechscope.io import write_json_atomic, write_text_atomic

    console = Console(stderr=True)
    m = load_model(model, device, dtype)
    if transcoders:
        tcs = load_transcoders(transcoders)
    else:
        console.print(f"training {m.cfg.n_layers} transcoders for {train_steps} steps (pass --transcoders to reuse some)")
        tokens = text_tokens(m, min(64, m.cfg.n_ctx), 128, seed + 1, text)
        tcs = train_mlp_transcoders(m, tokens, TranscoderRun(steps=train_steps, k=k, seed=seed))
    if save_transcoders_to and not getattr(tcs, "is_cross_layer", False):
        save_transcoders(tcs, save_transcoders_to)
    graph = attribute(m, tcs, prompt, max_n_logits=max_n_logits, desired_logit_prob=desired_logit_prob,
                      batch_size=batch_size, max_feature_nodes=max_feature_nodes)
    replacement, completeness = graph.scores()
    pruned = graph.prune(node_threshold, edge_threshold)
    console.print(f"{graph.n_features} active features, {int((graph.adjacency != 0).sum())} edges; pruned to "
                  f"{int(pruned.node_mask.sum())} nodes, {int(pruned.edge_mask.sum())} edges; replacement score "
                  f"{replacement:.3f}, completeness {completeness:.3f}")
    if json_path:
        write_json_atomic(json_path, graph.to_neuronpedia(node_threshold=node_threshold, edge_threshold=edge_threshold))
    if html_path:
        write_text_atomic(html_path, graph_html(graph, title=f"attribution graph: {prompt}"))


def register(app: typer.Typer) -> None:
    app.command("graph")(graph_cmd)


def graph_html(graph, title: str = "attribution graph") -> str:
    """A self-contained page (plotly.js inlined, no CDN; every string escaped) showing `graph`."""
    from mechscope.graphs.export import graph_figure
    from mechscope.report.page import figures_page

    return figures_page(title, [graph_figure(graph)], notes=[graph.prompt or " ".join(graph.token_strings)])

