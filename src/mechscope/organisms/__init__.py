"""Model organisms: small HF models trained here on a corpus with planted mechanisms.

    from mechscope.organisms import shipped_path, load_ground_truth
    path = shipped_path("tiny-gpt2")          # an HF checkpoint dir
    gt = load_ground_truth("tiny-gpt2")       # what was planted (see world.py for the fields)
"""

from mechscope.organisms.shipped import DEFAULT_ORGANISM, list_shipped, shipped_path
from mechscope.organisms.world import GroundTruth, load_ground_truth, make_world
from mechscope.specs import register_spec_prefix

register_spec_prefix("organism:", shipped_path)

__all__ = ["DEFAULT_ORGANISM", "GroundTruth", "list_shipped", "load_ground_truth", "make_world", "shipped_path"]
