"""The base of every analysis result: numbers, a plotly figure, and JSON.

Subclass as a dataclass, implement `figure()`, and list fields that should stay out of JSON
(large tensors) in `_json_exclude`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from mechscope.io import to_jsonable, write_json_atomic


@dataclasses.dataclass
class Result:
    _json_exclude: ClassVar[tuple[str, ...]] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {}
        for f in dataclasses.fields(self):
            if f.name in self._json_exclude:
                continue
            out[f.name] = to_jsonable(getattr(self, f.name))
        return out

    def figure(self):  # -> plotly.graph_objects.Figure
        raise NotImplementedError(f"{type(self).__name__} has no figure")

    def save_json(self, path) -> None:
        write_json_atomic(path, self.to_dict())
