"""The computational graph circuits live in: sources, destinations and the edges between them.

Names follow EAP-IG (hannamw/EAP-IG) so graphs travel between the two:

    sources       ``input`` (embedding + positions, i.e. blocks.0.hook_resid_pre),
                  ``a{L}.h{H}`` (head H's output, attn.hook_z[:, :, H] @ W_O[L, H]),
                  ``m{L}`` (the MLP's output, hook_mlp_out)
    destinations  ``a{L}`` (what attention layer L reads: hook_attn_in, shared by its heads and q/k/v),
                  ``m{L}`` (what MLP L reads: hook_mlp_in), ``logits`` (ln_final.hook_in)
    edges         ``SRC->DST``, e.g. ``input->a0``, ``a0.h1->a1``, ``a1.h2->m1``, ``m1->logits``

A destination's input is the sum of the outputs of the sources upstream of it (plus constant
biases), so an edge is one term of that sum. Attention destinations are whole layers: EAP-IG's
split edges ``a0.h1->a1.h0<k>`` (one per receiving head and q/k/v input) merge onto ``a0.h1->a1``,
and for first-order scores the merged score is the sum of the split ones. On parallel
attention+MLP blocks ``m{L}`` does not read layer L's heads.

Index layout (topological): source 0 is ``input``; layer L's heads are 1 + L(H+1) + h and its MLP
1 + L(H+1) + H. Destinations are ``a0, m0, a1, m1, ..., logits``. ``graph.allowed`` [n_src n_dst]
marks the pairs that are edges; circuits are bool masks of that shape.
"""

from __future__ import annotations

import dataclasses
import re

import torch

from mechscope.errors import InputError

_SPLIT_DST = re.compile(r"^a(\d+)\.h\d+<[qkv]>$")


@dataclasses.dataclass(frozen=True)
class Graph:
    n_layers: int
    n_heads: int
    parallel_attn_mlp: bool = False

    @classmethod
    def from_model(cls, model) -> Graph:
        return cls(model.cfg.n_layers, model.cfg.n_heads, bool(model.cfg.parallel_attn_mlp))

    # -- nodes ---------------------------------------------------------------------------------
    @property
    def n_src(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    @property
    def n_dst(self) -> int:
        return 2 * self.n_layers + 1

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

    @property
    def destinations(self) -> list[str]:
        names = []
        for layer in range(self.n_layers):
            names += [f"a{layer}", f"m{layer}"]
        return names + ["logits"]

    def source_layer(self, index: int) -> int:
        """The layer of source `index` (-1 for the input)."""
        return -1 if index == 0 else (index - 1) // (self.n_heads + 1)

    @property
    def allowed(self) -> torch.Tensor:
        """[n_src n_dst] bool: True where source -> destination is an edge."""
        mask = torch.zeros(self.n_src, self.n_dst, dtype=torch.bool)
        for layer in range(self.n_layers):
            first_head = 1 + layer * (self.n_heads + 1)
            mask[:first_head, 2 * layer] = True
            mask[:first_head if self.parallel_attn_mlp else first_head + self.n_heads, 2 * layer + 1] = True
        mask[:, -1] = True
        return mask

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
        """A circuit mask from edge names (ours, or EAP-IG's split ``a0.h1->a1.h0<k>``, merged)."""
        mask = self.empty()
        src_at = {n: i for i, n in enumerate(self.sources)}
        dst_at = {n: i for i, n in enumerate(self.destinations)}
        allowed = self.allowed
        for name in edges:
            s, d = self.parse_edge(name, src_at, dst_at)
            if not allowed[s, d]:
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

    def parse_edge(self, name: str, src_at: dict | None = None, dst_at: dict | None = None) -> tuple[int, int]:
        src_at = src_at or {n: i for i, n in enumerate(self.sources)}
        dst_at = dst_at or {n: i for i, n in enumerate(self.destinations)}
        try:
            src, dst = name.split("->")
        except ValueError:
            raise InputError(f"edge {name!r} should read SRC->DST, e.g. 'a0.h1->a1'") from None
        split = _SPLIT_DST.match(dst)
        if split:
            dst = f"a{split.group(1)}"
        if src not in src_at or dst not in dst_at:
            raise InputError(f"edge {name!r}: unknown node for a {self.n_layers}-layer, {self.n_heads}-head "
                             "graph (sources input, a{L}.h{H}, m{L}; destinations a{L}, m{L}, logits)")
        return src_at[src], dst_at[dst]

    # -- scores as a vector over edges ----------------------------------------------------------
    def to_edge_vector(self, matrix: torch.Tensor) -> torch.Tensor:
        """[n_src n_dst] -> [n_edges] in `edge_index` order."""
        return matrix[tuple(self.edge_index().T)]

    def from_edge_vector(self, vector: torch.Tensor, fill=0) -> torch.Tensor:
        out = torch.full((self.n_src, self.n_dst), fill, dtype=vector.dtype)
        out[tuple(self.edge_index().T)] = vector
        return out
