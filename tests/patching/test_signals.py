"""C19's analyses on a subset of layers: the same numbers as the full sweep at the layers visited."""

from __future__ import annotations

import torch

from mechscope.patching.signals import order_probe, position_vs_token


def test_order_probe_on_some_layers_equals_those_rows_of_every_layer(tiny_gpt2_model):
    model = tiny_gpt2_model
    full = order_probe(model, n_prompts=40, null_shuffles=2, control_shuffles=1)
    part = order_probe(model, n_prompts=40, null_shuffles=2, control_shuffles=1, layers=[0])
    n = model.cfg.n_layers
    assert full.layers == list(range(n + 1)) and part.layers == [0, n]
    assert torch.equal(part.accuracy, full.accuracy[[0, n]])
    assert torch.equal(part.control, full.control[[0, n]])
    layer, pos, acc = part.best(1)
    assert layer == n and acc == float(full.accuracy[n].max()) and part.accuracy[part.row(layer), pos] == acc
    part.figure()


def test_position_vs_token_on_some_layers(tiny_gpt2_model):
    full = position_vs_token(tiny_gpt2_model, n_prompts=6)
    part = position_vs_token(tiny_gpt2_model, n_prompts=6, layers=[1])
    assert part.layers == [1] and full.layers == [0, 1]
    for kind, by in part.effect.items():
        for where, values in by.items():
            torch.testing.assert_close(values, full.effect[kind][where][1:], rtol=1e-5, atol=1e-6)
    part.figure()
