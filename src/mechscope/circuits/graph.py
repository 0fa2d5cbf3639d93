"""The computational graph circuits live in: sources, destinations and the edges between them.

Names follow EAP-IG (hannamw/EAP-IG) so graphs travel between the two:

    sources       ``input`` (embedding + positions, i.e. blocks.0.hook_resid_pre),
                  ``a{L}.h{H}`` (head H's output, attn.hook_z[:, :, H] @ W_O[L, H]),
                  ``m{L}`` (the MLP's output, hook_mlp_out)
    destinations  ``a{L}`` (what attention layer L reads: hook_attn_in, shared by its heads and q/k/v),
                  or with ``qkv=True`` ``a{L}.h{H}<q>``, ``a{L}.h{G}<k>``, ``a{L}.h{G}<v>`` (what head H's
                  query projection reads, and key / value head G's: hook_q_input / hook_k_input /
                  hook_v_input, mechscope.model.split_qkv; on grouped-query models G counts kv heads),
                  ``m{L}`` (what MLP L reads: hook_mlp_in), ``logits`` (ln_final.hook_in)
    edges         ``SRC->DST``, e.g. ``input->a0``, ``a0.h1->a1``, ``a0.h1->a1.h2<k>``, ``m1->logits``

A destination's input is the sum of the outputs of the sources upstream of it (plus constant
biases), so an edge is one term of that sum. The merged destination ``a{L}`` is the sum of the
split ones: a split graph's first-order scores summed over a layer's q/k/v destinations are the
merged graph's (`merge`). On parallel attention+MLP blocks ``m{L}`` does not read layer L's heads.

Index layout (topological): source 0 is ``input``; layer L's heads are 1 + L(H+1) + h and its MLP
1 + L(H+1) + H. Destinations are, per layer, its attention destinations (one, or H + 2 KV with the
q's, then the k's, then the v's) and then its MLP, and last ``logits``. ``graph.allowed`` [n_src
n_dst] marks the pairs that are edges; circuits are bool masks of that shape.
"""

from __future__ import annotations

import dataclasses
import functools
import re

import torch

from mechscope.errors import InputError

SPLIT_DST = re.compile(r"^a(\d+)\.h(\d+)<([qkv])>$")
QKV = "qkv"


@dataclasses.dataclass(frozen=True)
class Graph:
    n_layers: int
    n_heads: int
    parallel_attn_mlp: bool = False
    qkv: bool = False          # attention destinations per head and q / k / v input
    n_kv_heads: int = 0        # key / value heads (grouped-query attention); 0: n_heads

    @classmethod
    def from_model(cls, model, *, qkv: bool = False) -> Graph:
        c = model.cfg
        return cls(c.n_layers, c.n_heads, bool(c.parallel_attn_mlp), qkv=qkv,
                   n_kv_heads=c.n_kv_heads if c.n_kv_heads != c.n_heads else 0)

    # -- nodes ---------------------------------------------------------------------------------
    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def n_attn_dst(self) -> int:
        """Destinations per attention layer: 1, or n_heads + 2 kv_heads with ``qkv``."""
        return self.n_heads + 2 * self.kv_heads if self.qkv else 1

    def attn_dst(self, layer: int) -> slice:
        """The destination columns of attention layer `layer`."""
        start = layer * (self.n_attn_dst + 1)
        return slice(start, start + self.n_attn_dst)

    def mlp_dst(self, layer: int) -> int:
        return layer * (self.n_attn_dst + 1) + self.n_attn_dst

    @property
    def n_src(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_dst(self) -> int:
        return self.n_layers * (self.n_attn_dst + 1) + 1

    def head_index(self, layer: int, head: int) -> int:
        return 1 + layer * (self.n_heads + 1) + head

    def mlp_index(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    @property
    def sources(self) -> list[str]:
        names = ["input"]
        for layer in range(self.n_layers):
            names += [f"a{layer}.h{h}" for h in range(self.n_heads)] + [f"m{layer}"]
        return names

    def attn_destinations(self, layer: int) -> list[str]:
        if not self.qkv:
            return [f"a{layer}"]
        return [f"a{layer}.h{h}<{x}>" for x, n in zip(QKV, self.qkv_heads, strict=True) for h in range(n)]

    @property
    def qkv_heads(self) -> tuple[int, int, int]:
        """How many query, key and value inputs a layer has (with ``qkv``)."""
        return self.n_heads, self.kv_heads, self.kv_heads

    @property
    def destinations(self) -> list[str]:
        names = []
        for layer in range(self.n_layers):
            names += self.attn_destinations(layer) + [f"m{layer}"]
        return names + ["logits"]

    def source_layer(self, index: int) -> int:
        """The layer of source `index` (-1 for the input)."""
        return -1 if index == 0 else (index - 1) // (self.n_heads + 1)

    @functools.cached_property
    def allowed(self) -> torch.Tensor:
        """[n_src n_dst] bool: True where source -> destination is an edge (do not modify)."""
        mask = torch.zeros(self.n_src, self.n_dst, dtype=torch.bool)
        for layer in range(self.n_layers):
            first_head = 1 + layer * (self.n_heads + 1)
            mask[:first_head, self.attn_dst(layer)] = True
            mask[:first_head if self.parallel_attn_mlp else first_head + self.n_heads, self.mlp_dst(layer)] = True
        mask[:, -1] = True
        return mask

    @functools.cached_property
    def feeds(self) -> torch.Tensor:
        """[n_dst n_src] bool: True where destination d is (part of) what source s reads: a layer's
        attention input feeds its heads (a query input its own head, a kv input its group), an MLP
        input its MLP; ``logits`` feeds no source."""
        out = torch.zeros(self.n_dst, self.n_src, dtype=torch.bool)
        group = self.n_heads // self.kv_heads
        for layer in range(self.n_layers):
            heads = [self.head_index(layer, h) for h in range(self.n_heads)]
            cols = range(self.attn_dst(layer).start, self.attn_dst(layer).stop)
            if not self.qkv:
                out[cols[0], heads] = True
            else:
                for i, h in enumerate(heads):
                    out[cols[i], h] = True                                       # <q>
                    for x in (1, 2):                                             # <k>, <v> of its kv head
                        out[cols[self.n_heads + (x - 1) * self.kv_heads + i // group], h] = True
            out[self.mlp_dst(layer), self.mlp_index(layer)] = True
        return out

    @functools.cached_property
    def merge_matrix(self) -> torch.Tensor:
        """[n_dst n_dst of the merged graph] float: 1 where a destination is part of a merged one."""
        merged = self.merged
        out = torch.zeros(self.n_dst, merged.n_dst)
        for layer in range(self.n_layers):
            out[self.attn_dst(layer), merged.attn_dst(layer)] = 1.0
            out[self.mlp_dst(layer), merged.mlp_dst(layer)] = 1.0
        out[-1, -1] = 1.0
        return out

    @property
    def merged(self) -> Graph:
        """The same graph with one destination per attention layer."""
        return dataclasses.replace(self, qkv=False)

    def merge(self, matrix: torch.Tensor) -> torch.Tensor:
        """A split graph's [n_src n_dst] scores (summed) or mask (any) on the merged graph's destinations."""
        if matrix.dtype == torch.bool:
            return (matrix.float() @ self.merge_matrix) > 0
        return matrix @ self.merge_matrix.to(matrix.dtype).to(matrix.device)

    def split(self, mask: torch.Tensor) -> torch.Tensor:
        """A merged graph's mask [n_src n_dst of merged] -> this graph's: every split edge of a kept edge."""
        return ((mask.float() @ self.merge_matrix.T) > 0) & self.allowed

    @property
    def n_edges(self) -> int:
        return int(self.allowed.sum())

    def edge_index(self) -> torch.Tensor:
        """[n_edges 2] (source, destination) of every edge, destinations in order, sources in order."""
        return self.allowed.T.nonzero()[:, [1, 0]]

    def edge_names(self) -> list[str]:
        src, dst = self.sources, self.destinations
        return [f"{src[s]}->{dst[d]}" for s, d in self.edge_index().tolist()]

    # -- circuits as masks -----------------------------------------------------------------------
    def full(self) -> torch.Tensor:
        return self.allowed.clone()

    def empty(self) -> torch.Tensor:
        return torch.zeros(self.n_src, self.n_dst, dtype=torch.bool)

    def mask_from_edges(self, edges) -> torch.Tensor:
        """A circuit mask from edge names: ours, or EAP-IG's split ``a0.h1->a1.h0<k>`` (merged onto
        ``a0.h1->a1`` unless the graph is split); on a split graph a merged ``a0.h1->a1`` keeps every
        split edge it stands for."""
        mask = self.empty()
        src_at = {n: i for i, n in enumerate(self.sources)}
        dst_at = {n: i for i, n in enumerate(self.destinations)}
        allowed = self.allowed
        for name in edges:
            s, d = self.parse_edge(name, src_at, dst_at)
            if not bool(allowed[s, d].all()):
                raise InputError(f"edge {name!r} is not an edge of this graph (a destination only reads "
                                 "sources of earlier layers, and an MLP the heads of its own layer)")
            mask[s, d] = True
        return mask

    def mask_from_nodes(self, nodes) -> torch.Tensor:
        """Node-level circuit: every edge leaving a kept source (``input`` is always kept)."""
        src_at = {n: i for i, n in enumerate(self.sources)}
        keep = torch.zeros(self.n_src, dtype=torch.bool)
        keep[0] = True
        for n in nodes:
            if n not in src_at:
                raise InputError(f"unknown node {n!r}: nodes are input, a{{L}}.h{{H}} and m{{L}}")
            keep[src_at[n]] = True
        return self.allowed & keep[:, None]

    def edges_of(self, mask: torch.Tensor) -> list[str]:
        names = self.edge_names()
        flat = mask[tuple(self.edge_index().T)]
        return [n for n, keep in zip(names, flat.tolist(), strict=True) if keep]

    def nodes_of(self, mask: torch.Tensor) -> list[str]:
        """Source nodes with at least one kept outgoing edge."""
        used = (mask & self.allowed).any(1)
        return [n for n, u in zip(self.sources, used.tolist(), strict=True) if u]

    def parse_edge(self, name: str, src_at: dict | None = None, dst_at: dict | None = None
                   ) -> tuple[int, int | slice]:
        """(source index, destination index) of an edge name; on a split graph, a merged attention
        destination ``a{L}`` gives the slice of its split destinations."""
        src_at = src_at or {n: i for i, n in enumerate(self.sources)}
        dst_at = dst_at or {n: i for i, n in enumerate(self.destinations)}
        try:
            src, dst = name.split("->")
        except ValueError:
            raise InputError(f"edge {name!r} should read SRC->DST, e.g. 'a0.h1->a1'") from None
        split = SPLIT_DST.match(dst)
        if split and not self.qkv:
            dst = f"a{split.group(1)}"
        if src in src_at and self.qkv and re.fullmatch(r"a\d+", dst) and int(dst[1:]) < self.n_layers:
            return src_at[src], self.attn_dst(int(dst[1:]))
        if src not in src_at or dst not in dst_at:
            level = "a{L}.h{H}<q|k|v>" if self.qkv else "a{L}"
            raise InputError(f"edge {name!r}: unknown node for a {self.n_layers}-layer, {self.n_heads}-head "
                             f"graph (sources input, a{{L}}.h{{H}}, m{{L}}; destinations {level}, m{{L}}, logits)")
        return src_at[src], dst_at[dst]

    # -- scores as a vector over edges ----------------------------------------------------------
    def to_edge_vector(self, matrix: torch.Tensor) -> torch.Tensor:
        """[n_src n_dst] -> [n_edges] in `edge_index` order."""
        return matrix[tuple(self.edge_index().T)]

    def from_edge_vector(self, vector: torch.Tensor, fill=0) -> torch.Tensor:
        out = torch.full((self.n_src, self.n_dst), fill, dtype=vector.dtype)
        out[tuple(self.edge_index().T)] = vector
        return out
