"""Explicit, reversible weight transforms that leave the model's function (nearly) unchanged.

TransformerLens folds these silently at load time, so its logits differ from HF's (TL issue #1272).
Here each is opt-in, returns a `TransformReport` with its measured numerical effect on a probe batch,
and is undone by ``report.undo()`` (or used as a context manager)::

    with fold_layer_norm(model) as report:
        print(report.max_logprob_change)   # e.g. 2e-6
        ...                                # W_Q etc. now include the norm weights
    # weights restored here

fold_layer_norm     norm weight (and LayerNorm bias) folded into the projections that read the norm;
                    the norm keeps only its normalisation (weight 1, bias 0)
center_unembed      subtract the mean over the vocabulary from W_U: logits shift by a per-position
                    constant, log-probabilities are unchanged
center_writing_weights  (LayerNorm models) subtract the d_model mean from everything that writes to the
                    residual stream (W_E, W_pos, W_O, W_out and their biases): LayerNorm removes it anyway

Tied embeddings are untied by the transforms that touch W_U (and re-tied by undo).
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import InputError
from mechscope.model.sharding import refuse_if_sharded


@dataclasses.dataclass
class TransformReport:
    name: str
    max_logprob_change: float      # max |Δ log p| over the probe batch
    max_logit_change: float
    _model: object = dataclasses.field(repr=False, default=None)
    _saved: dict = dataclasses.field(repr=False, default_factory=dict)   # module -> {attr: tensor | None}
    _tied: bool = dataclasses.field(repr=False, default=False)

    def undo(self) -> None:
        for module, attrs in self._saved.items():
            for attr, value in attrs.items():
                setattr(module, attr, value)
        if self._tied:
            m = self._model
            m.structure.unembed.weight = m.structure.embed.weight
        self._saved = {}

    def __enter__(self) -> TransformReport:
        return self

    def __exit__(self, *exc) -> None:
        self.undo()

    def to_dict(self) -> dict:
        return {"name": self.name, "max_logprob_change": self.max_logprob_change,
                "max_logit_change": self.max_logit_change}


class _Editor:
    """Records the original Parameter objects before replacing them, so undo puts them back exactly."""

    def __init__(self) -> None:
        self.saved: dict = {}

    def set(self, module: torch.nn.Module, attr: str, value: torch.Tensor | None) -> None:
        slot = self.saved.setdefault(module, {})
        if attr not in slot:
            slot[attr] = getattr(module, attr, None)
        setattr(module, attr, None if value is None else torch.nn.Parameter(value.detach().clone(),
                                                                               requires_grad=False))


def _probe(model) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, model.cfg.d_vocab, (2, min(32, model.cfg.n_ctx)), generator=g).to(model.device)


def _run(model, name: str, edit) -> TransformReport:
    refuse_if_sharded(model, name)
    tokens = _probe(model)
    with torch.no_grad():
        before = model(tokens)
        editor = _Editor()
        tied = model.structure.unembed.weight is model.structure.embed.weight
        try:
            edit(editor)
        except BaseException:
            TransformReport(name, 0.0, 0.0, model, editor.saved, tied).undo()
            raise
        after = model(tokens)
    d_logp = (after.log_softmax(-1) - before.log_softmax(-1)).abs().max().item()
    return TransformReport(name, d_logp, (after - before).abs().max().item(), model, editor.saved,
                           tied and model.structure.unembed.weight is not model.structure.embed.weight)


def _fold_into(editor: _Editor, proj: torch.nn.Module, scale: torch.Tensor, shift: torch.Tensor | None,
               conv1d: bool) -> None:
    """proj(y * scale + shift) == proj'(y): fold a per-feature affine map into a projection's input."""
    w = proj.weight.detach()
    bias = proj.bias.detach() if getattr(proj, "bias", None) is not None else None
    if conv1d:  # [in, out]
        new_w = w * scale[:, None]
        extra = shift @ w if shift is not None else None
    else:       # [out, in]
        new_w = w * scale[None, :]
        extra = w @ shift if shift is not None else None
    editor.set(proj, "weight", new_w)
    if extra is not None:
        editor.set(proj, "bias", extra if bias is None else bias + extra)


def fold_layer_norm(model) -> TransformReport:
    t, s = model.table, model.structure

    def norm_affine(norm):
        scale = norm.weight.detach() + t.norm_weight_offset
        shift = norm.bias.detach() if getattr(norm, "bias", None) is not None else None
        return scale, shift

    def reset(editor, norm):
        editor.set(norm, "weight", torch.full_like(norm.weight, 1.0 - t.norm_weight_offset))
        if getattr(norm, "bias", None) is not None:
            editor.set(norm, "bias", torch.zeros_like(norm.bias))

    def edit(editor: _Editor) -> None:
        for b in s.blocks:
            attn_affine, mlp_affine = norm_affine(b.ln1), norm_affine(b.ln2)  # before either reset (shared norms)
            paths = (t.q_proj,) if t.qkv_layout != "separate" else (t.q_proj, t.k_proj, t.v_proj)
            for path in paths:
                _fold_into(editor, b.attn.get_submodule(path), *attn_affine, t.qkv_layout == "fused_conv1d")
            for path in dict.fromkeys(filter(None, (t.mlp_in, t.mlp_gate))):  # a fused gate_up once
                _fold_into(editor, b.mlp.get_submodule(path), *mlp_affine, t.mlp_is_conv1d)
            for norm in dict.fromkeys((b.ln1, b.ln2)):
                reset(editor, norm)
        scale, shift = norm_affine(s.final_norm)
        _fold_into(editor, s.unembed, scale, shift, False)
        reset(editor, s.final_norm)

    return _run(model, "fold_layer_norm", edit)


def center_unembed(model) -> TransformReport:
    def edit(editor: _Editor) -> None:
        w = model.structure.unembed.weight.detach()           # [d_vocab d_model]
        editor.set(model.structure.unembed, "weight", w - w.mean(0, keepdim=True))
        bias = getattr(model.structure.unembed, "bias", None)
        if bias is not None:
            editor.set(model.structure.unembed, "bias", bias.detach() - bias.detach().mean())

    return _run(model, "center_unembed", edit)


def center_writing_weights(model) -> TransformReport:
    if model.cfg.norm != "layernorm":
        raise InputError("center_writing_weights needs LayerNorm (it relies on the norm removing the mean); "
                         f"this model uses {model.cfg.norm}")
    t, s = model.table, model.structure

    def centred_output(editor, module, conv1d: bool) -> None:
        w = module.weight.detach()
        # output features are the last axis for Conv1D ([in, out]) and the first for Linear ([out, in])
        editor.set(module, "weight", w - w.mean(-1 if conv1d else 0, keepdim=True))
        if getattr(module, "bias", None) is not None:
            editor.set(module, "bias", module.bias.detach() - module.bias.detach().mean())

    def edit(editor: _Editor) -> None:
        tied = s.unembed.weight is s.embed.weight
        if tied:  # untie: the unembedding keeps the uncentred matrix
            editor.set(s.unembed, "weight", s.unembed.weight.detach())
        for emb in filter(None, (s.embed, s.pos_embed)):
            w = emb.weight.detach()
            editor.set(emb, "weight", w - w.mean(-1, keepdim=True))
        for b in s.blocks:
            centred_output(editor, b.out_proj, t.out_proj_is_conv1d)
            centred_output(editor, b.mlp_out, t.mlp_is_conv1d)

    return _run(model, "center_writing_weights", edit)
