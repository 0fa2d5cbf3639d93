"""Cache views: the residual stream at every layer (one definition, read by the lens and geometry) and per-head outputs."""

from __future__ import annotations

import torch

from mechscope.model.cache import accumulated_resid_labels, accumulated_resid_names


def test_accumulated_resid_is_the_stream_after_each_block(tiny_gpt2_model):
    """Point 0 is the embedding, point k the output of block k-1, the last what the final norm reads."""
    model, n = tiny_gpt2_model, tiny_gpt2_model.cfg.n_layers
    tokens = model.to_tokens("Once upon a time there was a cat")
    names = ["hook_embed", "hook_pos_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(n)]
    _, cache = model.run_with_cache(tokens, names=names + accumulated_resid_names(n) + ["ln_final.hook_normalized"])
    stack, labels = cache.accumulated_resid(return_labels=True)
    assert stack.shape == (n + 1, *tokens.shape, model.cfg.d_model)
    assert labels == [f"{i}_pre" for i in range(n)] + ["final_post"]
    assert len(accumulated_resid_labels(n)) == n + 1
    torch.testing.assert_close(stack[0], cache["hook_embed"] + cache["hook_pos_embed"])
    for k in range(1, n + 1):
        torch.testing.assert_close(stack[k], cache["resid_post", k - 1], atol=0, rtol=0)
    torch.testing.assert_close(model.ln_final(stack[-1]), cache["ln_final.hook_normalized"])
    assert cache.accumulated_resid(n - 1).shape[0] == n - 1          # resid_pre of blocks 0..n-2 only


def test_stacked_head_results_sum_to_attn_out(tiny_gpt2_model):
    """Per-head outputs (heads moved to the front by the axes table) plus b_O rebuild each attn_out."""
    model, n, h = tiny_gpt2_model, tiny_gpt2_model.cfg.n_layers, tiny_gpt2_model.cfg.n_heads
    tokens = model.to_tokens("Once upon a time there was a cat")
    names = [f"blocks.{i}.attn.hook_result" for i in range(n)] + [f"blocks.{i}.hook_attn_out" for i in range(n)]
    _, cache = model.run_with_cache(tokens, names=names)
    stack, labels = cache.stack_head_results(return_labels=True)
    assert stack.shape == (n * h, *tokens.shape, model.cfg.d_model) and labels[h + 1] == "L1H1"
    for layer in range(n):
        heads = stack[layer * h:(layer + 1) * h]
        torch.testing.assert_close(heads.sum(0) + model.b_O[layer], cache["attn_out", layer], atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(heads[1], cache["result", layer][:, :, 1])
