"""`circuit.json`: the planted circuit of a compiled organism (format "mechscope-circuit/1").

Node and edge names follow EAP-IG (hannamw/EAP-IG): nodes ``input``, ``a{L}.h{H}``, ``m{L}``,
``logits``; edges ``SRC->DST``, where an attention destination names the input it enters:
``a0.h1->a1.h2<k>``, ``input->a0.h1<q>``, ``a1.h2->logits``, ``m0->m1``.

    circuit = load_circuit("compiled-induction")      # shipped name or organism directory
    circuit.heads()                                    # [(layer, head), ...] in the circuit
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

from mechscope.errors import InputError, ModelLoadError
from mechscope.io import write_json_atomic

FORMAT = "mechscope-circuit/1"
_NODE = re.compile(r"^(input|logits|a(\d+)\.h(\d+)|m(\d+))$")
_EDGE = re.compile(r"^(?P<src>[^<>-]+)->(?P<dst>[^<>-]+?)(<(?P<qkv>[qkv])>)?$")


@dataclasses.dataclass
class Circuit:
    """nodes / edges: name -> what it does; mlp_units: "m{L}" -> {"units": [...], "role": ...} or a
    list of such dicts; metrics: measured on the shipped weights; extra: any further ground truth."""

    organism: str
    task: str
    nodes: dict[str, str]
    edges: dict[str, str]
    mlp_units: dict[str, Any] = dataclasses.field(default_factory=dict)
    metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        for node in self.nodes:
            if not _NODE.match(node):
                raise InputError(f"circuit node {node!r} is not an EAP-IG node name (input, a0.h1, m0, logits)")
        for edge in self.edges:
            match = _EDGE.match(edge)
            if not match:
                raise InputError(f"circuit edge {edge!r} is not SRC->DST or SRC->DST<q|k|v>")
            src, dst, qkv = match["src"], match["dst"], match["qkv"]
            if src not in self.nodes or dst not in self.nodes:
                raise InputError(f"edge {edge!r} joins a node that is not in the circuit's nodes")
            if (qkv is not None) != dst.startswith("a"):
                raise InputError(f"edge {edge!r}: an attention destination needs <q>, <k> or <v>, others none")

    def heads(self) -> list[tuple[int, int]]:
        """(layer, head) of every attention node, sorted."""
        return sorted((int(m[2]), int(m[3])) for n in self.nodes if (m := _NODE.match(n)) and m[2])

    def mlps(self) -> list[int]:
        return sorted(int(m[4]) for n in self.nodes if (m := _NODE.match(n)) and m[4])

    def to_dict(self) -> dict[str, Any]:
        out = {"format": FORMAT, "organism": self.organism, "task": self.task, "nodes": self.nodes,
               "edges": self.edges, "mlp_units": self.mlp_units, "metrics": self.metrics}
        out.update(self.extra)
        return out

    def save(self, path: str | Path) -> Path:
        return write_json_atomic(path, self.to_dict())


def load_circuit(name_or_path: str | Path) -> Circuit:
    """Read circuit.json from a file, an organism directory or a shipped organism name."""
    from mechscope.organisms.shipped import organism_file

    path = organism_file(name_or_path, "circuit.json", "only compiled organisms carry one "
                         "(`mechscope organism build NAME --out DIR` writes it)")
    data = json.loads(path.read_text(encoding="utf-8"))
    if data.get("format") != FORMAT:
        raise ModelLoadError(f"{path} has format {data.get('format')!r}, expected {FORMAT!r}")
    known = {"organism", "task", "nodes", "edges", "mlp_units", "metrics"}
    return Circuit(**{k: data[k] for k in known if k in data},
                   extra={k: v for k, v in data.items() if k not in known | {"format"}})
