"""A static, self-contained HTML attention viewer: pick a layer and head, hover a token to see where
it attends (key tokens shaded by weight). No network access, no external scripts.

Tokens are escaped twice over: the visible table is built with html.escape on the server side,
and the data for the script travels as JSON inside <script type="application/json"> with "<",
">" and "&" written as unicode escapes, so no token text can close the tag or inject markup.

Usage::

    html = attention_html(model, "When Mary and John went to the store, John gave a drink to")
    save_attention_html("attn.html", model, text)
"""

from __future__ import annotations

import html
import json

import torch

from mechscope.attention.detectors import attention_patterns
from mechscope.io import write_text_atomic

_PAGE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; }}
.tok {{ display: inline-block; padding: 2px 3px; margin: 1px; border: 1px solid #ddd;
        font-family: monospace; white-space: pre; cursor: pointer; }}
.tok.sel {{ outline: 2px solid #c00; }}
</style></head><body>
<h2>{title}</h2>
<p>Layer <select id="layer">{layer_options}</select> Head <select id="head">{head_options}</select>
&nbsp; Hover a token (query) to shade the tokens it attends to.</p>
<div id="tokens">{token_spans}</div>
<script type="application/json" id="data">{data}</script>
<script>
const data = JSON.parse(document.getElementById("data").textContent);
const spans = Array.from(document.querySelectorAll(".tok"));
function show(q) {{
  const l = +document.getElementById("layer").value, h = +document.getElementById("head").value;
  const row = data.patterns[l][h][q];
  spans.forEach((s, k) => {{
    const w = k <= q ? row[k] : 0;
    s.style.background = "rgba(30, 90, 200," + w.toFixed(3) + ")";
    s.classList.toggle("sel", k === q);
  }});
}}
spans.forEach((s, q) => s.addEventListener("mouseenter", () => show(q)));
show(spans.length - 1);
</script></body></html>
"""


def _json_for_script(obj) -> str:
    text = json.dumps(obj, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def attention_html(model, text_or_tokens, title: str = "attention patterns", decimals: int = 3) -> str:
    """HTML for one sequence (text or a 1-D / [1 pos] token tensor)."""
    if isinstance(text_or_tokens, str):
        tokens = model.to_tokens(text_or_tokens)
    else:
        tokens = torch.as_tensor(text_or_tokens).reshape(1, -1)
    patterns = attention_patterns(model, tokens)[:, 0]               # [L H q k]
    str_tokens = model.to_str_tokens(tokens[0])
    spans = "".join(f'<span class="tok" title="{i}">{html.escape(t)}</span>' for i, t in enumerate(str_tokens))
    data = {"tokens": str_tokens, "patterns": patterns.round(decimals=decimals).tolist()}
    return _PAGE.format(
        title=html.escape(title),
        layer_options="".join(f'<option value="{layer}">{layer}</option>' for layer in range(model.cfg.n_layers)),
        head_options="".join(f'<option value="{h}">{h}</option>' for h in range(model.cfg.n_heads)),
        token_spans=spans, data=_json_for_script(data))


def save_attention_html(path, model, text_or_tokens, title: str = "attention patterns") -> None:
    write_text_atomic(path, attention_html(model, text_or_tokens, title))
