"""The residual stream at every layer: one definition, read by the lens and geometry."""

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
