"""Circuit discovery on the hooked model: the edge graph, one patching engine, EAP / EAP-IG / exact
edge patching / ACDC, circuit selection and faithfulness curves.

    from mechscope.circuits import CircuitSetup, attribute, faithfulness_curve
    setup = CircuitSetup.from_task(model, task, ablation="patching")
    scores = attribute(setup, "eap-ig")          # EdgeScores: m(edge ablated) - m(clean), per edge
    curve = faithfulness_curve(setup, scores)

``CircuitSetup.from_task(..., qkv=True)`` scores edges into each head's q, k and v input
(``a0.h1->a1.h2<k>``), EAP-IG's level; ``scores.merged()`` sums them onto one destination per layer.
"""

from mechscope.circuits.acdc import AcdcResult, acdc
from mechscope.circuits.attribution import METHODS, EdgeScores, attribute
from mechscope.circuits.eapig_format import from_eapig, to_eapig
from mechscope.circuits.engine import CircuitSetup, answer_logits, evaluate
from mechscope.circuits.faithfulness import FaithfulnessCurve, faithfulness_curve
from mechscope.circuits.graph import Graph
from mechscope.circuits.selection import SELECTIONS, greedy, select, threshold, top_n
from mechscope.circuits.sources import ABLATIONS
from mechscope.circuits.truth import load_circuit_json, roc_auc, truth_mask

__all__ = ["ABLATIONS", "METHODS", "SELECTIONS", "AcdcResult", "CircuitSetup", "EdgeScores", "FaithfulnessCurve",
           "Graph", "acdc", "answer_logits", "attribute", "evaluate", "faithfulness_curve", "from_eapig", "greedy",
           "load_circuit_json", "roc_auc", "select", "threshold", "to_eapig", "top_n", "truth_mask"]
