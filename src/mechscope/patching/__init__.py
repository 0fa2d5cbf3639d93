"""Activation patching, path patching and attribution patching on a HookedModel.

    from mechscope.patching import activation_patching, attribution_patching, path_patching
    grid = activation_patching(model, task, "resid_pre")       # [n_layers n_pos], fraction of effect
"""

from mechscope.patching.activation import PatchingConfig, activation_patching, grid_sites
from mechscope.patching.attribution import attribution_patching, compare_with_exact, forward_to_answer
from mechscope.patching.partial_forward import PartialForwardConfig, Site, run_patched
from mechscope.patching.path import PathPatchingConfig, path_patching
from mechscope.patching.results import Agreement, AttributionResult, PatchingResult

__all__ = ["Agreement", "AttributionResult", "PartialForwardConfig", "PatchingConfig", "PatchingResult",
           "PathPatchingConfig", "Site", "activation_patching", "attribution_patching", "compare_with_exact",
           "forward_to_answer", "grid_sites", "path_patching", "run_patched"]
