"""Sparse dictionaries: SAE variants, training, evaluation, SAELens interop and dashboards.

    from mechscope.dictionary import SAEConfig, create_sae, SAETrainer, TrainerConfig
    sae = create_sae(SAEConfig(d_in=256, architecture="topk", k=32, hook_name="blocks.2.hook_resid_post"))
"""

from mechscope.dictionary.base import SAEOutput, SparseAutoencoder, fraction_of_variance_unexplained
from mechscope.dictionary.batch_topk import BatchTopKSAE
from mechscope.dictionary.config import ARCHITECTURES, SAEConfig
from mechscope.dictionary.evaluate import SAEEvaluation, evaluate_on_activations, evaluate_sae
from mechscope.dictionary.jumprelu import JumpReLUSAE
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.dictionary.registry import SAE_CLASSES, create_sae
from mechscope.dictionary.relu_l1 import ReluL1SAE
from mechscope.dictionary.saelens_format import load_saelens, save_saelens
from mechscope.dictionary.topk import TopKSAE
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig

__all__ = [
    "ARCHITECTURES", "SAEConfig", "SAEOutput", "SparseAutoencoder", "ReluL1SAE", "TopKSAE", "BatchTopKSAE",
    "JumpReLUSAE", "LatentStats", "SAE_CLASSES", "create_sae", "fraction_of_variance_unexplained",
    "SAETrainer", "TrainerConfig", "SAEEvaluation", "evaluate_sae", "evaluate_on_activations",
    "save_saelens", "load_saelens",
]
