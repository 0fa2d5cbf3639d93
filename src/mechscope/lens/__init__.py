"""Reading the residual stream as predictions: logit lens, tuned lens, and removing the norms.

    from mechscope.lens import logit_lens, train_tuned_lens, compare_lenses, remove_norms
"""

from mechscope.lens.frozen_norms import FrozenNorms, load_norm_free, save_norm_free
from mechscope.lens.logit_lens import LogitLensConfig, LogitLensResult, logit_lens, run_lens
from mechscope.lens.norm_removal import NormRemovalConfig, NormRemovalResult, remove_norms
from mechscope.lens.tuned_lens import TunedLens
from mechscope.lens.tuned_training import (
                                           LensComparison,
                                           TunedLensTrainConfig,
                                           TunedLensTraining,
                                           compare_lenses,
                                           train_tuned_lens,
)

__all__ = [
    "FrozenNorms", "LensComparison", "LogitLensConfig", "LogitLensResult", "NormRemovalConfig", "NormRemovalResult",
    "TunedLens", "TunedLensTrainConfig", "TunedLensTraining", "compare_lenses", "load_norm_free", "logit_lens",
    "remove_norms", "run_lens", "save_norm_free", "train_tuned_lens",
]
