"""Compiled organisms: GPT-2 checkpoints whose weights are written by construction, each with the
circuit it implements in `circuit.json` (circuit.py) and its metrics measured on the built weights.

    from mechscope.organisms.compiled import build, COMPILED
    build("compiled-induction", "out/compiled-induction")      # seconds, deterministic from the seed
    mechscope.load("organism:compiled-induction")               # the shipped copy

Each organism module has NAME, CLAIMS (the claims it is ground truth for), ``compile_<what>(seed) -> (CompiledGPT2, Circuit)`` and
``measure(model, circuit) -> metrics``; its docstring states the construction step by step.
"""

from __future__ import annotations

import importlib
from pathlib import Path

from mechscope.errors import InputError
from mechscope.organisms.compiled.circuit import Circuit, load_circuit

COMPILED = {  # name -> (module, compile function)
    "compiled-induction": ("induction", "compile_induction"),
    "compiled-boolean": ("boolean", "compile_boolean"),
    "compiled-memory": ("memory", "compile_memory"),
    "compiled-geometry": ("geometry", "compile_geometry"),
    "compiled-ioi": ("ioi", "compile_ioi"),
}


def _module(name: str):
    if name not in COMPILED:
        raise InputError(f"no compiled organism named {name!r}; choose one of {', '.join(COMPILED)}")
    return importlib.import_module(f"mechscope.organisms.compiled.{COMPILED[name][0]}")


def build(name: str, out: str | Path, seed: int = 0) -> Path:
    """Write the compiled organism `name` into `out`: HF checkpoint, tokenizer and circuit.json
    (with metrics measured on the written weights). Returns `out`."""
    import torch

    from mechscope.model.loading import load

    module = _module(name)
    net, circuit = getattr(module, COMPILED[name][1])(seed)
    out = net.save(out)
    circuit.extra["seed"] = seed
    circuit.extra["claims"] = list(module.CLAIMS)
    with torch.no_grad():
        circuit.metrics = module.measure(load(str(out)), circuit)
    circuit.save(out / "circuit.json")
    return out


def measure(name: str, model, circuit: Circuit) -> dict[str, float]:
    """Re-measure a compiled organism's metrics on `model` (e.g. the shipped weights)."""
    return _module(name).measure(model, circuit)


__all__ = ["COMPILED", "Circuit", "build", "load_circuit", "measure"]
