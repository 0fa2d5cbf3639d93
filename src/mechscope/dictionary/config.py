"""The one configuration dataclass every sparse autoencoder variant reads.

Fields that only matter for one architecture say so; the others ignore them. Defaults train a
reasonable SAE without tuning: TopK with k=32 at 16x expansion, unit-norm decoder rows.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

Architecture = Literal["relu_l1", "topk", "batch_topk", "jumprelu"]
ARCHITECTURES: tuple[str, ...] = ("relu_l1", "topk", "batch_topk", "jumprelu")


@dataclasses.dataclass
class SAEConfig:
    """Shape and sparsity mechanism of one sparse autoencoder.

    d_in: width of the activations it reads (e.g. d_model for the residual stream).
    d_sae: number of latents; if 0, `expansion_factor * d_in`.
    hook_name: the hook point its activations come from (used by the trainer to pick them out of a
        batch dict, by evaluation to splice it back in, and by the SAELens export).
    normalize_decoder: keep every decoder row (one latent's direction) at unit norm.
    normalize_activations: scale inputs by one constant (fitted on the first batch) so that
        E||x||^2 = d_in; makes l1/l0 coefficients transfer between models. Folded into the
        weights on SAELens export.
    b_dec_init: how the decoder bias is set from the first batch of data.
    k: active latents per token (topk) or on average per token (batch_topk).
    l1_coefficient: weight of the decoder-norm-aware L1 penalty (relu_l1).
    l0_coefficient, jumprelu_bandwidth, jumprelu_init_threshold: JumpReLU's L0 penalty weight,
        the width of the rectangle kernel used for pseudo-gradients, and the initial threshold.
    auxk_coefficient, auxk_k: the AuxK loss for dead latents (topk, batch_topk); auxk_k=0 means d_in // 2.
    dead_after_tokens: a latent that has not fired for this many training tokens counts as dead.
    """

    d_in: int
    d_sae: int = 0
    architecture: Architecture = "topk"
    expansion_factor: int = 16
    hook_name: str = ""
    model_name: str = ""
    normalize_decoder: bool = True
    normalize_activations: bool = True
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    k: int = 32
    l1_coefficient: float = 2.0
    l0_coefficient: float = 1.0
    jumprelu_bandwidth: float = 0.5
    jumprelu_init_threshold: float = 1.0
    auxk_coefficient: float = 1 / 32
    auxk_k: int = 0
    dead_after_tokens: int = 1_000_000
    seed: int = 0

    def __post_init__(self):
        from mechscope.errors import InputError

        if self.architecture not in ARCHITECTURES:
            raise InputError(f"unknown SAE architecture {self.architecture!r}: use one of {ARCHITECTURES}")
        if self.d_in <= 0:
            raise InputError(f"d_in must be positive, got {self.d_in}")
        if self.d_sae <= 0:
            self.d_sae = self.expansion_factor * self.d_in
        if self.architecture in ("topk", "batch_topk") and not 0 < self.k <= self.d_sae:
            raise InputError(f"k={self.k} must be in 1..d_sae={self.d_sae}")
        if self.auxk_k <= 0:
            self.auxk_k = max(1, min(self.d_in // 2, self.d_sae))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SAEConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})
