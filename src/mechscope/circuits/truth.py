"""Scoring discovered circuits against a planted ground truth (an organism's ``circuit.json``).

``circuit.json`` (format ``mechscope-circuit/1``) names its edges the EAP-IG way. On a split graph
(``Graph(qkv=True)``) they are its edges one for one; on a merged graph split attention edges
(``a0.h1->a1.h0<k>``) merge onto the layer-level destinations (``a0.h1->a1``), so the truth mask
is the set of merged edges that contain at least one planted split edge.

ROC AUC ranks edges by |score| against that mask (Mann-Whitney statistic, ties counted half).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from mechscope.circuits.graph import Graph
from mechscope.errors import InputError

FORMAT = "mechscope-circuit/1"


def load_circuit_json(path: str | Path) -> dict:
    data = json.loads(Path(path).read_text())
    if data.get("format") != FORMAT:
        raise InputError(f"{path}: expected format {FORMAT!r}, got {data.get('format')!r}")
    return data


def truth_mask(graph: Graph, circuit: dict) -> torch.Tensor:
    """[n_src n_dst] bool of the planted edges (EAP-IG names merged onto our graph)."""
    return graph.mask_from_edges(list(circuit["edges"]))


def roc_auc(graph: Graph, scores: torch.Tensor, truth: torch.Tensor) -> float:
    """Area under the ROC curve of |score| as a detector of `truth`, over the graph's edges."""
    s = graph.to_edge_vector(scores.float()).abs().double()
    t = graph.to_edge_vector(truth).bool()
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        raise InputError(f"ROC AUC needs planted and non-planted edges; got {n_pos} and {n_neg}")
    order = s.argsort()
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, len(s) + 1, dtype=torch.double)
    for value in s.unique():                                    # average ranks over ties
        tied = s == value
        ranks[tied] = ranks[tied].mean()
    return float((ranks[t].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))
