"""Geometry of the residual stream and the embeddings, and how robust the stack of blocks is.

    from mechscope.geometry import residual_norms, norm_dilution, positional_geometry,
                                   token_embedding_geometry, layer_robustness
"""

from mechscope.geometry.dilution import DilutionResult, norm_dilution
from mechscope.geometry.layer_robustness import LayerRobustnessResult, layer_robustness, reordered_layers
from mechscope.geometry.norms import NormGrowthResult, ov_norms, residual_norms
from mechscope.geometry.positional import PositionalConfig, PositionalGeometryResult, positional_geometry
from mechscope.geometry.token_embeddings import (
    TokenEmbeddingConfig,
    TokenEmbeddingResult,
    token_embedding_geometry,
)

__all__ = [
    "DilutionResult", "LayerRobustnessResult", "NormGrowthResult", "PositionalConfig", "PositionalGeometryResult",
    "TokenEmbeddingConfig", "TokenEmbeddingResult", "layer_robustness", "norm_dilution", "ov_norms",
    "positional_geometry", "reordered_layers", "residual_norms", "token_embedding_geometry",
]
