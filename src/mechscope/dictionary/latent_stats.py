"""Dead and dense latent tracking during training and evaluation.

A latent is *dead* when it has not fired for `dead_after_tokens` tokens, and *dense* when it
fires on more than `dense_above` of all tokens seen (a latent that is "always on" explains
little).
"""

from __future__ import annotations

import torch
from torch import Tensor


class LatentStats:
    """Running per-latent firing statistics.

    tokens_since_fired [d_sae] (int64), fire_count [d_sae] (int64), tokens_seen (int).
    """

    def __init__(self, d_sae: int):
        self.tokens_since_fired = torch.zeros(d_sae, dtype=torch.long)
        self.fire_count = torch.zeros(d_sae, dtype=torch.long)
        self.tokens_seen = 0

    def update(self, fire_counts: Tensor, n_tokens: int) -> None:
        """Record one batch: fire_counts [d_sae] = tokens each latent fired on, out of n_tokens."""
        fire_counts = fire_counts.detach().to("cpu", torch.long)
        self.tokens_since_fired += n_tokens
        self.tokens_since_fired[fire_counts > 0] = 0
        self.fire_count += fire_counts
        self.tokens_seen += n_tokens

    def dead_mask(self, dead_after_tokens: int) -> Tensor:
        """[d_sae] bool: latents silent for at least `dead_after_tokens` tokens."""
        return self.tokens_since_fired >= dead_after_tokens

    def frequencies(self) -> Tensor:
        """[d_sae] fraction of seen tokens on which each latent fired."""
        return self.fire_count.double() / max(self.tokens_seen, 1)

    def dense_mask(self, dense_above: float = 0.1) -> Tensor:
        return self.frequencies() > dense_above

    def state_dict(self) -> dict:
        return {"tokens_since_fired": self.tokens_since_fired.clone(), "fire_count": self.fire_count.clone(),
                "tokens_seen": torch.tensor(self.tokens_seen)}

    def load_state_dict(self, state: dict) -> None:
        self.tokens_since_fired = state["tokens_since_fired"].clone()
        self.fire_count = state["fire_count"].clone()
        self.tokens_seen = int(state["tokens_seen"])
