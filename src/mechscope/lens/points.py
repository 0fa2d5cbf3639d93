"""The residual-stream points a lens reads: the embedding and the output of every block.

Point 0 is ``blocks.0.hook_resid_pre`` (token plus positional embedding); point i >= 1 is
``blocks.{i-1}.hook_resid_post``. The last point is what the model's own final norm and unembedding
read, so a lens at the last point reproduces the model's logits.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import torch


def resid_point_names(n_layers: int) -> list[str]:
    """Hook names of the n_layers + 1 residual points, embedding first."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{layer}.hook_resid_post" for layer in range(n_layers)]


def resid_point_labels(n_layers: int) -> list[str]:
    """Short labels for plots and JSON: "embed", then the index of the block just applied."""
    return ["embed"] + [str(layer) for layer in range(n_layers)]


def stacked_resid(cache, n_layers: int) -> torch.Tensor:
    """[n_points batch pos d_model] residual stream at every point, from a cache holding them."""
    return torch.stack([cache[name] for name in resid_point_names(n_layers)])


def token_batches(tokens: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 8) -> Iterator[torch.Tensor]:
    """Yield LongTensor batches [batch pos] from one [n pos] tensor or pass an iterable through."""
    if isinstance(tokens, torch.Tensor):
        if tokens.ndim == 1:
            tokens = tokens[None]
        for start in range(0, len(tokens), batch_size):
            yield tokens[start:start + batch_size]
    else:
        yield from tokens
