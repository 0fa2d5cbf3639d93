"""Viewer escaping, ICL / repeat loss arithmetic, name-mover scores against a direct computation."""

from __future__ import annotations

import json
import re

import pytest
import torch

from mechscope.attention.icl import icl_score, per_token_loss, repeat_loss
from mechscope.attention.name_movers import name_mover_scores
from mechscope.attention.viewer import attention_html
from mechscope.tasks.induction import repeated_tokens
from mechscope.tasks.ioi import ioi_task


def test_viewer_escapes_tokens(tiny_gpt2_model):
    text = 'x</script><script>alert("hi")</script> & <b>bold</b>'
    page = attention_html(tiny_gpt2_model, text, title="<title>")
    assert "<script>alert" not in page
    assert "<b>" not in page
    assert page.count("</script>") == 2           # only our own two script tags close
    data = re.search(r'<script type="application/json" id="data">(.*?)</script>', page, re.S).group(1)
    parsed = json.loads(data)
    assert "".join(parsed["tokens"]).endswith("</b>")   # the text survives the escaping intact
    n = len(parsed["tokens"])
    assert len(parsed["patterns"]) == tiny_gpt2_model.cfg.n_layers
    assert len(parsed["patterns"][0][0]) == n


def test_per_token_loss_matches_cross_entropy(tiny_gpt2_model):
    tokens = repeated_tokens(tiny_gpt2_model, 2, 6).tokens
    loss = per_token_loss(tiny_gpt2_model, tokens)
    with torch.no_grad():
        logits = tiny_gpt2_model(tokens)
    ref = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1),
                                            reduction="none").reshape(2, -1)
    torch.testing.assert_close(loss, ref, atol=1e-5, rtol=1e-5)


def test_icl_and_repeat_loss_arithmetic(tiny_gpt2_model):
    rep = repeated_tokens(tiny_gpt2_model, 2, 6)
    fake = torch.zeros(2, rep.tokens.shape[1] - 1)
    fake[:, rep.start: rep.start + 5] = 4.0            # first copy (predicting tokens 2..6)
    fake[:, rep.start + 6: rep.start + 11] = 1.0       # second copy
    r = repeat_loss(tiny_gpt2_model, rep, fake)
    assert (r.first_copy_loss, r.second_copy_loss, r.drop) == (4.0, 1.0, 3.0)
    s = icl_score(tiny_gpt2_model, rep.tokens)
    assert s.score == pytest.approx(s.late_loss - s.early_loss)


def test_name_mover_scores_match_direct_computation(tiny_gpt2_model):
    model = tiny_gpt2_model
    task = ioi_task(model, n_prompts=4, template_ids=[0])
    scores = name_mover_scores(model, task)
    layer, head = 1, 3
    names = [f"blocks.{layer}.attn.hook_result", f"blocks.{layer}.attn.hook_pattern", "ln_final.hook_scale"]
    with torch.no_grad():
        _, cache = model.run_with_cache(task.clean_tokens, names=names)
    rows = torch.arange(4)
    end, io = task.positions["END"], task.positions["IO"]
    att = cache[names[1]][rows, head, end, io]
    out = cache[names[0]][rows, end, head]                              # [b d_model]
    out = (out - out.mean(-1, keepdim=True)) / cache["ln_final.hook_scale"][rows, end]
    w = model.hf_model.transformer.ln_f.weight.detach()
    direction = model.W_U[:, task.answer_ids].T - model.W_U[:, task.wrong_ids].T
    dla = ((out * w) * direction).sum(-1)
    assert scores.logit_effect[layer, head].item() == pytest.approx(dla.mean().item(), abs=1e-5)
    assert scores.score[layer, head].item() == pytest.approx((att * dla).mean().item(), abs=1e-5)
