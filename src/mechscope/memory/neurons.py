"""MLP units as keys and values (Geva et al. 2021, "Transformer Feed-Forward Layers Are Key-Value
Memories").

A unit i of layer L reads a key (row i of the up projection; what it fires on) and writes a value
(row i of W_out, [d_model]). Keys are read from behaviour: the contexts of a token stream where the
unit's activation (``mlp.hook_post``) is largest. Values are read from weights: W_out[L, i] @ W_U,
the unit's direct push on every vocabulary logit (no final norm, as in the paper). A set of units
is read the same way, with the summed activation and the summed value.

`unit_logit_attribution` ranks units for one fact: activation x (value · unembedding of the answer)
at the position that predicts it, the units' direct contribution to the answer's logit.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.data.activation_store import capture_activations
from mechscope.data.text import eval_tokens
from mechscope.errors import InputError
from mechscope.memory.prompts import Fact, check_layer, encode, subject_span, target_id
from mechscope.results import Result


@dataclasses.dataclass
class UnitKeysValues(Result):
    """Keys and values of `units` of `layer` (one entry per unit, then one for the whole set).

    top_contexts[j]: list of {"activation", "context", "token", "sequence", "position"}, largest first;
    value_top[j] / value_bottom[j]: list of (token, logit) from the value's vocabulary projection.
    """

    layer: int
    units: list[int]
    labels: list[str]
    top_contexts: list[list[dict]]
    value_top: list[list[tuple[str, float]]]
    value_bottom: list[list[tuple[str, float]]]
    n_tokens: int

    def figure(self):
        from plotly.subplots import make_subplots

        n = len(self.labels)
        fig = make_subplots(rows=n, cols=2, subplot_titles=[t for lab in self.labels for t in
                                                            (f"{lab}: top activations", f"{lab}: value → vocabulary")],
                            vertical_spacing=min(0.08, 0.5 / max(n, 1)))
        for row, (ctx, top) in enumerate(zip(self.top_contexts, self.value_top, strict=True), start=1):
            fig.add_bar(y=[f"{c['sequence']}:{c['position']} {c['token']!r}" for c in ctx][::-1],
                        x=[c["activation"] for c in ctx][::-1], orientation="h", showlegend=False,
                        hovertext=[c["context"] for c in ctx][::-1], row=row, col=1)
            fig.add_bar(y=[repr(t) for t, _ in top][::-1], x=[v for _, v in top][::-1], orientation="h",
                        showlegend=False, row=row, col=2)
        fig.update_layout(title=f"keys and values of layer {self.layer} units {self.units}", height=260 * n)
        return fig


def value_projection(model, layer: int, units: list[int]) -> torch.Tensor:
    """[len(units) d_vocab] W_out[layer, unit] @ W_U for each unit."""
    return model.W_out[layer, units].float() @ model.W_U.float()


def _tokens_of(model, logits: torch.Tensor, k: int, largest: bool) -> list[tuple[str, float]]:
    vals, idx = logits.topk(k, largest=largest)
    return [(model.tokenizer.decode([int(i)]), float(v)) for v, i in zip(vals, idx, strict=True)]


def _check_units(model, units) -> list[int]:
    units = [int(u) for u in units]
    bad = [u for u in units if not 0 <= u < model.cfg.d_mlp]
    if not units or bad:
        raise InputError(f"units must be a non-empty list in 0..{model.cfg.d_mlp - 1}; got {bad or 'none'}")
    return units


def unit_keys_values(model, layer: int, units: list[int], tokens: torch.Tensor | None = None, *, k: int = 10,
                     context: int = 10, n_sequences: int = 64, seq_len: int = 64, seed: int = 0
                     ) -> UnitKeysValues:
    """Top-`k` activating contexts of each unit (and of the set) over `tokens` ([n_seq pos]; default
    `n_sequences` windows of the bundled text) and the top/bottom-`k` tokens of each value."""
    layer = check_layer(model, layer)
    units = _check_units(model, units)
    if tokens is None:
        tokens = eval_tokens(model, seq_len=seq_len, n_sequences=n_sequences, seed=seed)
    name = f"blocks.{layer}.mlp.hook_post"
    acts = []
    for batch in tokens.split(16):    # each forward stops once the layer's units are read
        acts.append(capture_activations(model, batch, [name])[name][:, units].view(*batch.shape, len(units)))
    acts = torch.cat(acts)                                  # [n_seq pos units]
    acts = torch.cat([acts, acts.sum(-1, keepdim=True)], -1) if len(units) > 1 else acts
    values = value_projection(model, layer, units)
    values = torch.cat([values, values.sum(0, keepdim=True)]) if len(units) > 1 else values
    labels = [f"unit {u}" for u in units] + (["set"] if len(units) > 1 else [])
    n_pos = tokens.shape[1]
    top_contexts = []
    for j in range(len(labels)):
        a, idx = acts[..., j].flatten().topk(min(k, acts[..., j].numel()))
        rows = []
        for val, flat in zip(a.tolist(), idx.tolist(), strict=True):
            seq, pos = divmod(flat, n_pos)
            window = tokens[seq, max(0, pos - context + 1): pos + 1]
            text = model.tokenizer.decode(window[:-1].tolist()) + "[[" + model.tokenizer.decode([int(window[-1])]) + "]]"
            rows.append({"activation": val, "context": text, "token": model.tokenizer.decode([int(window[-1])]),
                         "sequence": seq, "position": pos})
        top_contexts.append(rows)
    return UnitKeysValues(layer=layer, units=units, labels=labels, top_contexts=top_contexts,
                          value_top=[_tokens_of(model, v, k, True) for v in values],
                          value_bottom=[_tokens_of(model, v, k, False) for v in values], n_tokens=tokens.numel())


def unit_logit_attribution(model, fact: Fact, position: int = -1) -> torch.Tensor:
    """[n_layers d_mlp] each unit's direct contribution to the answer's logit at `position` (default
    the last, which predicts the answer): hook_post activation x (W_out[unit] · W_U[:, answer]).
    Direct path only (no final norm scale, nothing through later layers)."""
    answer = target_id(model, fact.target)
    ids = encode(model, fact.prompt)
    names = [f"blocks.{layer}.mlp.hook_post" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(torch.tensor([ids]), names=names)
    direction = model.W_U[:, answer].float()                                   # [d_model]
    acts = torch.stack([cache[n][0, position].float() for n in names])          # [layer d_mlp]
    return acts * (model.W_out.float() @ direction)


def writing_layer(model, fact: Fact, position: str = "last") -> int:
    """The layer whose MLP writes most toward the fact's answer at `position` ("last" token or
    "subject_last"): the argmax over layers of the summed unit logit attribution there."""
    ids, _, end = subject_span(model, fact.prompt, fact.subject)
    pos = end - 1 if position == "subject_last" else len(ids) - 1
    return int(unit_logit_attribution(model, fact, pos).sum(-1).argmax())
