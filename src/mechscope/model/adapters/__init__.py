"""Architecture tables, looked up by the HF model class name."""

from __future__ import annotations

from mechscope.errors import UnsupportedArchitectureError
from mechscope.model.adapters.base import ArchitectureTable
from mechscope.model.adapters.gemma2 import GEMMA2
from mechscope.model.adapters.gpt2 import GPT2
from mechscope.model.adapters.gpt_neo import GPT_NEO
from mechscope.model.adapters.llama import GEMMA, LLAMA, PHI3, STABLELM
from mechscope.model.adapters.neox import NEOX
from mechscope.model.adapters.opt import OPT
from mechscope.model.adapters.parallel import GPTJ, PHI

TABLES: tuple[ArchitectureTable, ...] = (GPT2, NEOX, LLAMA, GEMMA, GEMMA2, STABLELM, PHI3, GPT_NEO, OPT, PHI, GPTJ)
_BY_CLASS = {cls: table for table in TABLES for cls in table.hf_classes}


def supported_classes() -> list[str]:
    return sorted(_BY_CLASS)


def table_for(hf_model) -> ArchitectureTable:
    cls = type(hf_model).__name__
    try:
        table = _BY_CLASS[cls]
    except KeyError:
        raise UnsupportedArchitectureError(
            f"no adapter for {cls}. Supported: {', '.join(supported_classes())}. "
            "To add one, write an ArchitectureTable in mechscope/model/adapters/ and list it in "
            "adapters/__init__.py (see docs/adding-an-architecture.md)."
        ) from None
    why = table.check_config(hf_model.config)
    if why is not None:
        raise UnsupportedArchitectureError(
            f"{cls} is supported, but not this variant ({why}). Extend the {table.name} table to serve "
            "it (see docs/adding-an-architecture.md).")
    return table


__all__ = ["ArchitectureTable", "TABLES", "supported_classes", "table_for"]
