"""Patching figures show model-derived token labels literally (escaped like every other figure)."""

from __future__ import annotations

import torch

from mechscope.patching.results import PatchingResult


def test_position_labels_are_escaped():
    labels = ["0:<b>", "1: &", "2:\n"]
    result = PatchingResult(task="t", site="resid_pre", direction="denoise", metric="logit_diff",
                            axes=("layer", "pos"), values=torch.zeros(2, 3), patched_metric=torch.zeros(2, 3),
                            clean_metric=1.0, corrupt_metric=0.0, n_prompts=1, pos_labels=labels)
    assert list(result.figure().data[0].x) == ["0:&lt;b&gt;", "1: &amp;", "2:\\n"]
