"""Architecture name -> SAE class, and the one constructor callers use."""

from __future__ import annotations

from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.batch_topk import BatchTopKSAE
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.jumprelu import JumpReLUSAE
from mechscope.dictionary.relu_l1 import ReluL1SAE
from mechscope.dictionary.topk import TopKSAE

SAE_CLASSES: dict[str, type[SparseAutoencoder]] = {
    "relu_l1": ReluL1SAE,
    "topk": TopKSAE,
    "batch_topk": BatchTopKSAE,
    "jumprelu": JumpReLUSAE,
}


def create_sae(cfg: SAEConfig) -> SparseAutoencoder:
    """A freshly initialised SAE of cfg.architecture."""
    return SAE_CLASSES[cfg.architecture](cfg)
