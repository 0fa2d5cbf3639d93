"""Key second moments C = E[k kᵀ] at MLP down projections, streamed, float64, resumable.

k is the input of the down projection (``blocks.L.mlp.hook_post``, [d_mlp]). ROME and MEMIT use
C to spread an edit away from keys the model already uses (they call it the covariance; like
them we take the uncentred second moment). The sum over tokens is accumulated in float64 over
fixed random windows of a text (`mechscope.data.text.eval_tokens`, seeded), so a run is a pure
function of (model, layers, n_tokens, seq_len, seed, source) and, resumed from its checkpoint after
a kill, ends with the same sums bit for bit.

Checkpoint: one safetensors file holding the running sums and, in its metadata, the batches done
and a fingerprint of the run's parameters; written atomically every `checkpoint_every` batches.

Scale-out: under `torchrun` (process group initialised, e.g. by
`mechscope.distributed.init_from_env`) rank r takes batches r, r + world, ...; the sums
are all-reduced at the end, so every rank returns C of all the tokens. Each rank checkpoints its own
share (`<checkpoint>.rank<r>-of-<world>`).
"""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import torch

from mechscope import distributed as ddp
from mechscope.data.activation_store import capture_activations
from mechscope.data.text import Source, eval_tokens
from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path
from mechscope.memory.prompts import check_layer
from mechscope.progress import progress
from mechscope.results import Result


@dataclasses.dataclass
class KeyCovariance(Result):
    """second_moment: [d_mlp d_mlp] float64 E[k kᵀ] over n_tokens tokens at `layer`."""

    _json_exclude = ("second_moment",)

    layer: int
    n_tokens: int
    second_moment: torch.Tensor

    def solve(self, rhs: torch.Tensor, damping: float = 0.0) -> torch.Tensor:
        """(C + damping·s·I)⁻¹ rhs in float64, s = mean(diag C) (1 when C is zero: then the solve is
        rhs / damping, the unwhitened direction); rhs: [d_mlp] or [d_mlp n]."""
        c = self.second_moment
        if damping:
            scale = float(c.diagonal().mean()) or 1.0
            c = c + damping * scale * torch.eye(c.shape[0], dtype=c.dtype)
        try:
            return torch.linalg.solve(c, rhs.to(torch.float64))
        except torch.linalg.LinAlgError:
            silent = int((self.second_moment.diagonal() == 0).sum())
            raise InputError(f"E[kkᵀ] at layer {self.layer} is singular ({silent} of {c.shape[0]} units never fired "
                             f"on its {self.n_tokens} tokens); pass a damping > 0 (e.g. 1e-3) or collect it on "
                             "more or other text") from None

    def to_dict(self) -> dict:
        eig = torch.linalg.eigvalsh(self.second_moment)
        return {"layer": self.layer, "n_tokens": self.n_tokens, "trace": float(self.second_moment.trace()),
                "min_eigenvalue": float(eig[0]), "max_eigenvalue": float(eig[-1])}

    def figure(self):
        import plotly.graph_objects as go

        eig = torch.linalg.eigvalsh(self.second_moment).flip(0).clamp_min(1e-30)
        fig = go.Figure(go.Scatter(y=eig.log10().tolist(), mode="lines"))
        fig.update_layout(title=f"E[k kᵀ] at layer {self.layer}: eigenvalue spectrum ({self.n_tokens} tokens)",
                          xaxis_title="rank", yaxis_title="log10 eigenvalue")
        return fig


def _fingerprint(model, layers, n_tokens, seq_len, seed, source) -> str:
    return json.dumps({"model": str(model.spec or model.cfg.hf_class), "layers": list(layers), "n_tokens": n_tokens,
                       "seq_len": seq_len, "seed": seed, "source": str(source), "d_mlp": model.cfg.d_mlp},
                      sort_keys=True)


def _load(path: Path, fingerprint: str, layers) -> tuple[dict[int, torch.Tensor], int]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            sums = {layer: f.get_tensor(f"sum.{layer}") for layer in layers}
    except Exception as err:
        raise CheckpointError(f"covariance checkpoint {path} is unreadable ({err}); delete it to restart") from err
    if meta.get("fingerprint") != fingerprint:
        raise CheckpointError(f"covariance checkpoint {path} belongs to another run ({meta.get('fingerprint')}); "
                              "delete it or pass another checkpoint path")
    return sums, int(meta["batches_done"])


def _save(path: Path, sums: dict[int, torch.Tensor], batches_done: int, fingerprint: str) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({f"sum.{layer}": s for layer, s in sums.items()}, str(tmp),
                  metadata={"fingerprint": fingerprint, "batches_done": str(batches_done)})


def batch_keys(model, tokens: torch.Tensor, names: list[str]) -> dict[str, torch.Tensor]:
    """hook_post activations of one token batch: name -> [batch*pos d_mlp] float64 on the CPU. The forward
    stops once every name is read (data.activation_store.capture_activations)."""
    return capture_activations(model, tokens, names, dtype=torch.float64)


def key_covariance(model, layers: int | list[int], n_tokens: int = 100_000, *, seq_len: int = 64,
                   batch_size: int = 16, seed: int = 0, source: Source = None,
                   checkpoint: str | Path | None = None, checkpoint_every: int = 20
                   ) -> KeyCovariance | dict[int, KeyCovariance]:
    """E[k kᵀ] at each layer's down projection over about `n_tokens` tokens (rounded up to whole
    sequences of `seq_len`). One layer in, one KeyCovariance out; a list in, a dict layer -> result.

    checkpoint: a file to resume from and save to; a killed run restarted with the same arguments
    continues where its last save stopped.
    """
    single = isinstance(layers, int)
    layers = [check_layer(model, layer) for layer in ([layers] if single else layers)]
    if n_tokens < 1:
        raise InputError(f"n_tokens must be positive, got {n_tokens}")
    seq_len = min(seq_len, model.cfg.n_ctx)
    n_seq = math.ceil(n_tokens / seq_len)
    tokens = eval_tokens(model, seq_len=seq_len, n_sequences=n_seq, seed=seed, source=source)
    batches = tokens.split(batch_size)
    names = [f"blocks.{layer}.mlp.hook_post" for layer in layers]
    fingerprint = _fingerprint(model, layers, n_tokens, seq_len, seed, source)
    d = model.cfg.d_mlp
    sums = {layer: torch.zeros(d, d, dtype=torch.float64) for layer in layers}
    done = 0
    rank, world = ddp.rank(), ddp.world_size()
    path = Path(checkpoint) if checkpoint is not None else None
    if path is not None and world > 1:
        path = path.with_name(f"{path.name}.rank{rank}-of-{world}")
    if path is not None and path.exists():
        sums, done = _load(path, fingerprint, layers)
    for i in progress(range(done, len(batches)), desc="key covariance", total=len(batches), initial=done):
        if i % world != rank:
            continue
        keys = batch_keys(model, batches[i], names)
        for layer, name in zip(layers, names, strict=True):
            k = keys[name]
            sums[layer].addmm_(k.T, k)
        if path is not None and ((i + 1) % checkpoint_every == 0 or i + 1 == len(batches)):
            _save(path, sums, i + 1, fingerprint)
    sums = {layer: ddp.all_reduce_sum(s) for layer, s in sums.items()}
    count = tokens.numel()
    out = {layer: KeyCovariance(layer=layer, n_tokens=count, second_moment=sums[layer] / count) for layer in layers}
    return out[layers[0]] if single else out
