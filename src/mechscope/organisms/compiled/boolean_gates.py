"""compiled-boolean's planted gates read through learned dictionaries (C15's ground truth).

Given activations of a dictionary at block 0's MLP input (parents) and one at its output (children),
on the same tokens: each latent is on where it exceeds a share of its own largest activation
(graphs.gates.latents_on); planted feature f is stood for by the parent latent whose on/off agrees
with it best, planted gate g by the best-agreeing child latent; children get their two parents by
co-activation and are classified (graphs.gates.classify_gates); a gate is recovered when its child
has the planted kind and the planted features' latents as parents (graphs.gates.score_planted_gates).

How many can be recovered: the AND gates (8), not the OR gates. Every sparse dictionary of the MLP
output prefers one latent per input feature, writing its copy and every OR gate it feeds, plus one
latent per both-on input pair that removes the doubled OR output (and writes the AND): fewer latents
on per token than the planted gates (`basis_l0`; 1.7 against 4.4 with features on at p = 0.2).
An OR gate then is the union of two feature latents and no latent of its own; the pair latents fire
as AND gates of pairs that feed only ORs, which the score counts as false gates.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from mechscope.graphs.gates import (
    GateAnalysis,
    PlantedGateScore,
    best_matching_latents,
    classify_gates,
    latents_on,
    score_planted_gates,
)
from mechscope.organisms.compiled.boolean import N_FEATURES
from mechscope.organisms.compiled.circuit import Circuit

PARENT_HOOK, CHILD_HOOK = "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out"


@dataclasses.dataclass
class PlantedGates:
    """features [6 d_model], gates [16 d_model]: the planted directions; kinds[g], parents[g]: gate g."""

    features: Tensor
    gates: Tensor
    kinds: list[str]
    parents: list[list[int]]

    @classmethod
    def from_circuit(cls, circuit: Circuit) -> PlantedGates:
        units = circuit.mlp_units["m0"]
        return cls(torch.tensor([circuit.extra["feature_directions"][f"f{f}"] for f in range(N_FEATURES)]),
                   torch.tensor([circuit.extra["gate_directions"][u["output"]] for u in units]),
                   [u["gate"] for u in units], [[int(p[1:]) for p in u["parents"]] for u in units])

    def on(self, mlp_in: Tensor, mlp_out: Tensor) -> tuple[Tensor, Tensor]:
        """MLP input and output [tokens d_model] -> (features on [tokens 6], gates on [tokens 16])."""
        return mlp_in @ self.features.T > 0.5, mlp_out @ self.gates.T > 0.5

    def basis_l0(self, feature_on: Tensor) -> dict[str, float]:
        """Mean number of output directions on per token in the planted basis (gates and copies) and in
        the input-feature basis (one latent per feature on, one per both-on pair feeding a gate)."""
        gate_on = torch.stack([feature_on[:, a] & feature_on[:, b] if k == "AND" else feature_on[:, a] | feature_on[:, b]
                               for k, (a, b) in zip(self.kinds, self.parents, strict=True)], -1)
        pairs = {tuple(sorted(p)) for p in self.parents}
        both = sum((feature_on[:, a] & feature_on[:, b]).double() for a, b in pairs)
        n_features = feature_on.sum(-1).double()
        return {"planted": float((gate_on.sum(-1) + n_features).mean()), "feature_basis": float((n_features + both).mean())}


@dataclasses.dataclass
class LearnedGateReading:
    """The gate analysis of the children, its score against the planted gates, and how well the
    matched latents agree with the planted features and gates (share of tokens, worst and mean)."""

    analysis: GateAnalysis
    score: PlantedGateScore
    feature_agreement: Tensor
    gate_agreement: Tensor

    def recovered_by_kind(self, kinds: list[str]) -> dict[str, int]:
        return {k: sum(ok for ok, kk in zip(self.score.recovered, kinds, strict=True) if kk == k) for k in ("AND", "OR")}


def read_gates(parent_acts: Tensor, child_acts: Tensor, feature_on: Tensor, gate_on: Tensor, planted: PlantedGates,
               relative_on: float = 0.3) -> LearnedGateReading:
    """parent_acts [tokens n_parent], child_acts [tokens n_child]: latent activations at the MLP input and
    output; feature_on [tokens 6], gate_on [tokens 16]: the planted truth on the same tokens."""
    parent_on, child_on = latents_on(parent_acts, relative_on), latents_on(child_acts, relative_on)
    feature_latent, feature_agree = best_matching_latents(feature_on, parent_on)
    gate_latent, gate_agree = best_matching_latents(gate_on, child_on)
    freq = child_on.double().mean(0)
    children = ((freq > 0.005) & (freq < 0.995)).nonzero().squeeze(-1)               # on sometimes, not always
    analysis = classify_gates(child_on[:, children], parent_on)
    position = {int(c): i for i, c in enumerate(children)}
    score = score_planted_gates(analysis, [position.get(int(c), -1) for c in gate_latent], planted.kinds,
                                planted.parents, feature_latent.tolist())
    return LearnedGateReading(analysis, score, feature_agree, gate_agree)
