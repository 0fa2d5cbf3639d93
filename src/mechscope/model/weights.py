"""Weight views in TransformerLens shapes, read from the HF modules through the architecture table.

Views are detached tensors; they are recomputed on access (cheap reshapes of the live weights), so
they always reflect the model as it is now. Grouped-query K/V weights are expanded to n_heads, so
W_K[l, h] is the key weight query head h actually reads. On a model sharded across ranks
(`model/sharding.py`) each view gathers the full weights: a collective every rank must call.
"""

from __future__ import annotations

import torch

from mechscope.model.sharding import refuse_if_sharded, whole


def in_out(module: torch.nn.Module, conv1d: bool) -> torch.Tensor:
    """A projection's weight as [in, out] (nn.Linear stores [out, in]; GPT-2's Conv1D [in, out])."""
    w = whole(module.weight).detach()
    return w if conv1d else w.T


def _bias(module: torch.nn.Module, size: int, like: torch.Tensor) -> torch.Tensor:
    b = getattr(module, "bias", None)
    return whole(b).detach() if b is not None else torch.zeros(size, dtype=like.dtype, device=like.device)


def per_head_qkv(table, cfg, attn: torch.nn.Module, *, read=lambda p: p) -> tuple[list, list]:
    """One attention module's projections per head, as the module stores them (K/V not expanded):
    ([W_Q [head d_model d_head], W_K, W_V [kv_head d_model d_head]], [b_Q [head d_head], b_K, b_V]).

    `read` maps each parameter before the reshapes (the views pass ``whole(p).detach()``; the split
    q/k/v input hooks pass the live parameter, so gradients reach it).
    """
    t, H, KV, d, dm = table, cfg.n_heads, cfg.n_kv_heads, cfg.d_head, cfg.d_model

    def bias(m, size, like):
        b = getattr(m, "bias", None)
        return read(b) if b is not None else torch.zeros(size, dtype=like.dtype, device=like.device)

    if t.qkv_layout == "separate":
        ws, bs = [], []
        for path, n in ((t.q_proj, H), (t.k_proj, KV), (t.v_proj, KV)):
            m = attn.get_submodule(path)
            w = read(m.weight).T
            ws.append(w.reshape(dm, n, d).permute(1, 0, 2))
            bs.append(bias(m, n * d, w).reshape(n, d))
    elif t.qkv_layout in ("fused_conv1d", "fused_linear"):  # output [q | k | v]
        m, sizes, heads = attn.get_submodule(t.q_proj), (H * d, KV * d, KV * d), (H, KV, KV)
        w = read(m.weight) if t.qkv_layout == "fused_conv1d" else read(m.weight).T
        ws = [p.reshape(dm, n, d).permute(1, 0, 2) for p, n in zip(w.split(sizes, dim=1), heads, strict=True)]
        bs = [p.reshape(n, d) for p, n in zip(bias(m, sum(sizes), w).split(sizes), heads, strict=True)]
    else:  # fused_per_head: output laid out as [head, (q|k|v), d_head]
        m = attn.get_submodule(t.q_proj)
        w = read(m.weight).reshape(H, 3, d, dm)
        ws = [w[:, i].transpose(1, 2) for i in range(3)]
        b = bias(m, 3 * H * d, w).reshape(H, 3, d)
        bs = [b[:, i] for i in range(3)]
    return ws, bs


class WeightViews:
    """Mixin for HookedModel: needs self.structure, self.table, self.cfg."""

    # -- embeddings and unembedding -------------------------------------------------------------
    @property
    def W_E(self) -> torch.Tensor:
        """[d_vocab d_model]"""
        return whole(self.structure.embed.weight).detach()

    @property
    def W_pos(self) -> torch.Tensor | None:
        """[n_ctx d_model], or None for models without learned positions."""
        pe = self.structure.pos_embed
        return whole(pe.weight).detach()[self.table.pos_embed_offset:] if pe is not None else None

    @property
    def W_U(self) -> torch.Tensor:
        """[d_model d_vocab]"""
        return whole(self.structure.unembed.weight).detach().T

    @property
    def b_U(self) -> torch.Tensor:
        """[d_vocab]"""
        return _bias(self.structure.unembed, self.cfg.d_vocab, self.W_U)

    # -- attention --------------------------------------------------------------------------------
    def _qkv(self, layer: int) -> tuple[torch.Tensor, ...]:
        """(W_Q, W_K, W_V) [head d_model d_head] and (b_Q, b_K, b_V) [head d_head] of one layer."""
        ws, bs = per_head_qkv(self.table, self.cfg, self.structure.blocks[layer].attn,
                              read=lambda p: whole(p).detach())
        rep = self.cfg.n_heads // self.cfg.n_kv_heads
        if rep > 1:
            ws = [ws[0]] + [x.repeat_interleave(rep, dim=0) for x in ws[1:]]
            bs = [bs[0]] + [x.repeat_interleave(rep, dim=0) for x in bs[1:]]
        return (*ws, *bs)

    def _stack_qkv(self, i: int) -> torch.Tensor:
        return torch.stack([self._qkv(layer)[i] for layer in range(self.cfg.n_layers)])

    @property
    def W_Q(self) -> torch.Tensor:
        """[layer head d_model d_head]"""
        return self._stack_qkv(0)

    @property
    def W_K(self) -> torch.Tensor:
        """[layer head d_model d_head] (GQA: expanded to n_heads)"""
        return self._stack_qkv(1)

    @property
    def W_V(self) -> torch.Tensor:
        """[layer head d_model d_head] (GQA: expanded to n_heads)"""
        return self._stack_qkv(2)

    @property
    def b_Q(self) -> torch.Tensor:
        return self._stack_qkv(3)

    @property
    def b_K(self) -> torch.Tensor:
        return self._stack_qkv(4)

    @property
    def b_V(self) -> torch.Tensor:
        return self._stack_qkv(5)

    @property
    def W_O(self) -> torch.Tensor:
        """[layer head d_head d_model]"""
        c = self.cfg
        return torch.stack([
            in_out(b.out_proj, self.table.out_proj_is_conv1d).reshape(c.n_heads, c.d_head, c.d_model)
            for b in self.structure.blocks
        ])

    @property
    def b_O(self) -> torch.Tensor:
        """[layer d_model]"""
        return torch.stack([_bias(b.out_proj, self.cfg.d_model, self.W_E) for b in self.structure.blocks])

    # -- MLP ----------------------------------------------------------------------------------------
    def _mlp_weight(self, path: str, conv1d: bool, half: int | None = None) -> torch.Tensor:
        """[layer in out]; half 0 / 1: the gate / up half of a fused [gate | up] projection's output."""
        ws = [in_out(b.mlp.get_submodule(path), conv1d) for b in self.structure.blocks]
        return torch.stack([w.chunk(2, dim=-1)[half] if half is not None else w for w in ws])

    def _gate_up_half(self, half: int) -> int | None:
        return half if self.table.mlp_gate_up_fused else None

    @property
    def W_in(self) -> torch.Tensor:
        """[layer d_model d_mlp] (the up projection of gated MLPs)"""
        return self._mlp_weight(self.table.mlp_in, self.table.mlp_is_conv1d, self._gate_up_half(1))

    @property
    def W_gate(self) -> torch.Tensor | None:
        """[layer d_model d_mlp] for gated MLPs, else None"""
        if self.table.mlp_gate is None:
            return None
        return self._mlp_weight(self.table.mlp_gate, self.table.mlp_is_conv1d, self._gate_up_half(0))

    @property
    def W_out(self) -> torch.Tensor:
        """[layer d_mlp d_model]"""
        return self._mlp_weight(self.table.mlp_out, self.table.mlp_is_conv1d)

    def W_out_parameter(self, layer: int) -> torch.nn.Parameter:
        """The live down-projection weight of `layer` in its HF layout (Conv1D [d_mlp d_model], nn.Linear
        [d_model d_mlp]): for saving and restoring it exactly. Change it with `add_to_W_out`."""
        return self.structure.blocks[layer].mlp_out.weight

    def add_to_W_out(self, layer: int, delta: torch.Tensor) -> None:
        """W_out[layer] += delta ([d_mlp d_model], the W_out view's layout), in place on the live weight."""
        refuse_if_sharded(self, "add_to_W_out")
        w = self.W_out_parameter(layer)
        with torch.no_grad():
            w.add_((delta if self.table.mlp_is_conv1d else delta.T).to(w.dtype))

    @property
    def b_in(self) -> torch.Tensor:
        """[layer d_mlp] (the up projection's bias for gated MLPs)"""
        t, half = self.table, self._gate_up_half(1)
        n = 2 * self.cfg.d_mlp if half is not None else self.cfg.d_mlp
        bs = [_bias(b.mlp.get_submodule(t.mlp_in), n, self.W_E) for b in self.structure.blocks]
        return torch.stack([x.chunk(2)[half] if half is not None else x for x in bs])

    @property
    def b_out(self) -> torch.Tensor:
        return torch.stack([_bias(b.mlp_out, self.cfg.d_model, self.W_E) for b in self.structure.blocks])

    # -- convenience ---------------------------------------------------------------------------------
    def tokens_to_residual_directions(self, tokens: torch.Tensor | int) -> torch.Tensor:
        """Unembedding columns of `tokens`: int -> [d_model]; [...] -> [... d_model]."""
        return self.W_U[:, tokens].movedim(0, -1) if isinstance(tokens, torch.Tensor) else self.W_U[:, tokens]
