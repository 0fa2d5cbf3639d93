"""Model-spec prefixes such as ``organism:NAME``, and who resolves them.

The model core knows no organism: a package that ships models registers its prefix here when it is
imported (`mechscope.organisms` registers ``organism:``), and `mechscope.load` imports such packages
before it resolves a spec. This module imports nothing heavy, so registering costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

_RESOLVERS: dict[str, Callable[[str], Path]] = {}


def register_spec_prefix(prefix: str, resolve: Callable[[str], Path]) -> None:
    """Resolve specs ``prefix + NAME`` with ``resolve(NAME) -> model directory``. A prefix is
    registered once: registering another function for it raises ValueError."""
    known = _RESOLVERS.get(prefix)
    if known is not None and known is not resolve:
        raise ValueError(f"the spec prefix {prefix!r} is already resolved by {known.__module__}.{known.__name__}")
    _RESOLVERS[prefix] = resolve


def resolve_prefixed(spec: str) -> Path | None:
    """The model directory of a spec with a registered prefix, or None when no prefix matches."""
    for prefix, resolve in _RESOLVERS.items():
        if spec.startswith(prefix):
            return Path(resolve(spec[len(prefix):]))
    return None


def registered_prefixes() -> list[str]:
    return sorted(_RESOLVERS)
