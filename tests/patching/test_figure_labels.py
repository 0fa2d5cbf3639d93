"""Patching figures put token strings on their axes escaped, like every other figure (report/escape.py)."""

from __future__ import annotations

import html

import torch

from mechscope.patching.results import AttributionResult, PatchingResult
from mechscope.patching.signals import OrderProbe

TOKENS = ["0:<b>", "1: the", "2:<script>alert(1)</script>", "3:a&b"]
EXPECTED = [html.escape(t, quote=True) for t in TOKENS]


def test_patching_grid_escapes_position_labels():
    r = PatchingResult(task="t", site="resid_pre", direction="denoise", metric="logit_diff", axes=("layer", "pos"),
                       values=torch.zeros(2, 4), patched_metric=torch.zeros(2, 4), clean_metric=1.0,
                       corrupt_metric=0.0, n_prompts=2, pos_labels=TOKENS)
    assert list(r.figure().data[0].x) == EXPECTED


def test_order_probe_escapes_position_labels():
    probe = OrderProbe(accuracy=torch.rand(3, 4), control=torch.rand(3, 4), pos_labels=TOKENS, n_prompts=8)
    assert list(probe.figure().data[0].x) == EXPECTED


def test_attribution_subplots_escape_position_labels():
    r = AttributionResult(task="t", direction="denoise", metric="logit_diff",
                          values={"resid_pre": torch.zeros(2, 4), "z": torch.zeros(2, 3)}, clean_metric=1.0,
                          corrupt_metric=0.0, n_prompts=2, n_forward=1, n_backward=1, pos_labels=TOKENS)
    fig = r.figure()
    assert list(fig.data[0].x) == EXPECTED and list(fig.data[1].x) == [0, 1, 2]
