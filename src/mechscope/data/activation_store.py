"""Activations of a model's hook points over a token dataset: harvested to disk, read back shuffled.

    store = harvest_activations(model, tokens, ["blocks.1.hook_resid_post"], "acts/")   # tokens [n_seq seq]
    for batch in store.batches(batch_size=4096, shuffle_buffer_tokens=2**18):       # {hook: [4096 d]}
        ...
    # or without disk:
    for batch in stream_activations(model, token_batches, hook_names, batch_size=4096): ...

On disk: `manifest.json` plus shards `shard_00000.safetensors`, each holding, for a run of whole
sequences, one tensor per hook [n_tokens d] (tokens in sequence order) and the token ids
"tokens" [n_seq seq]. Hook activations with extra dims (hook_z [.. head d_head]) are flattened.

Harvesting is resumable: every shard is written atomically and only then recorded in the
manifest (also atomic), so after a kill `harvest_activations` with the same arguments continues
after the last recorded shard. Memory stays bounded by one shard. The forward pass stops as soon as
every requested hook has fired, so a layer-1 harvest does not pay for the layers above it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import Tensor

from mechscope.errors import CheckpointError, InputError
from mechscope.io import atomic_path, write_json_atomic
from mechscope.progress import progress

FORMAT = "mechscope-activations/1"
MANIFEST = "manifest.json"


class _AllHooksSeen(Exception):
    """Raised inside a hook to end the forward pass once every requested activation is captured."""


@torch.no_grad()
def capture_activations(model, tokens: Tensor, hook_names: Sequence[str], drop_first_position: bool = False,
                        dtype: torch.dtype = torch.float32) -> dict[str, Tensor]:
    """Run `model` on tokens [batch seq] just far enough to read every hook: {hook: [batch*pos d]}."""
    captured: dict[str, Tensor] = {}

    def grab(act: Tensor, hook) -> None:
        if drop_first_position:
            act = act[:, 1:]
        captured[hook.name] = act.reshape(act.shape[0] * act.shape[1], -1).to("cpu", dtype)
        if len(captured) == len(hook_names):
            raise _AllHooksSeen

    try:
        with model.hooks(fwd={name: grab for name in hook_names}):
            model(tokens)
    except _AllHooksSeen:
        pass
    missing = [n for n in hook_names if n not in captured]
    if missing:
        raise InputError(f"hooks {missing} did not fire in the forward pass; pick names from model.hook_names()")
    return {n: captured[n] for n in hook_names}


def _fingerprint(tokens: Tensor) -> str:
    return hashlib.sha256(tokens.cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def harvest_activations(model, tokens: Tensor, hook_names: Sequence[str], out_dir: str | Path, *,
                        batch_size: int = 8, shard_tokens: int = 65536, dtype: torch.dtype = torch.float32,
                        drop_first_position: bool = False, show_progress: bool | None = None) -> ActivationStore:
    """Write activations of `hook_names` over tokens [n_seq seq] to `out_dir`; resume if it has a partial run."""
    out_dir = Path(out_dir)
    hook_names = list(hook_names)
    if tokens.ndim != 2 or tokens.shape[0] == 0:
        raise InputError(f"tokens must be a non-empty [n_seq seq] tensor, got shape {tuple(tokens.shape)}")
    seq_len = tokens.shape[1]
    per_seq = seq_len - (1 if drop_first_position else 0)
    shard_seqs = max(1, shard_tokens // max(per_seq, 1))
    manifest = {
        "format": FORMAT, "hook_names": hook_names, "dtype": str(dtype).removeprefix("torch."),
        "seq_len": seq_len, "n_sequences": int(tokens.shape[0]), "tokens_fingerprint": _fingerprint(tokens),
        "drop_first_position": drop_first_position, "model": getattr(model, "spec", None) or "",
        "d": {}, "shards": [], "complete": False,
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    for stray in out_dir.glob(".*.tmp"):  # half-written files of a killed run
        stray.unlink()
    old_path = out_dir / MANIFEST
    if old_path.exists():
        old = json.loads(old_path.read_text())
        same = {k: old.get(k) for k in ("hook_names", "tokens_fingerprint", "seq_len", "drop_first_position", "dtype")}
        if same != {k: manifest[k] for k in same}:
            raise CheckpointError(f"{out_dir} holds a harvest of other hooks/tokens/settings; use a fresh directory")
        manifest = old
    done = sum(s["n_sequences"] for s in manifest["shards"])
    with progress(total=tokens.shape[0], initial=done, desc="harvesting activations", enabled=show_progress) as bar:
        while done < tokens.shape[0]:
            shard_rows = tokens[done: done + shard_seqs]
            parts: dict[str, list[Tensor]] = {n: [] for n in hook_names}
            for batch in shard_rows.split(batch_size):
                acts = capture_activations(model, batch.to(model.device), hook_names, drop_first_position, dtype)
                for n in hook_names:
                    parts[n].append(acts[n])
                bar.update(batch.shape[0])
            tensors = {n: torch.cat(parts[n]).contiguous() for n in hook_names}
            tensors["tokens"] = shard_rows.cpu().contiguous()
            name = f"shard_{len(manifest['shards']):05d}.safetensors"
            with atomic_path(out_dir / name) as tmp:
                save_file(tensors, str(tmp))
            manifest["d"] = {n: int(tensors[n].shape[1]) for n in hook_names}
            manifest["shards"].append({"file": name, "first_sequence": done, "n_sequences": int(shard_rows.shape[0]),
                                       "n_tokens": int(tensors[hook_names[0]].shape[0])})
            write_json_atomic(old_path, manifest)
            done += shard_rows.shape[0]
    manifest["complete"] = True
    write_json_atomic(old_path, manifest)
    return ActivationStore(out_dir)


class ShuffleBuffer:
    """Mixes rows from a stream of {hook: [n d]} chunks (SAELens-style): fill to `capacity` rows,
    shuffle, hand out half as batches, refill. Row i of every hook stays aligned."""

    def __init__(self, capacity: int, batch_size: int, seed: int = 0):
        if capacity < 2 * batch_size:
            capacity = 2 * batch_size
        self.capacity, self.batch_size = capacity, batch_size
        self.gen = torch.Generator().manual_seed(seed)

    def __call__(self, chunks: Iterable[dict[str, Tensor]]) -> Iterator[dict[str, Tensor]]:
        pending: list[dict[str, Tensor]] = []  # concatenated once per fill, not once per chunk
        rows = 0
        for chunk in chunks:
            pending.append(chunk)
            rows += _rows(chunk)
            if rows >= self.capacity:
                buffer = yield from self._drain(_concat(pending), keep=self.capacity // 2)
                pending, rows = [buffer], _rows(buffer)
        if rows:
            yield from self._drain(_concat(pending), keep=0)

    def _drain(self, buffer: dict[str, Tensor], keep: int):
        perm = torch.randperm(_rows(buffer), generator=self.gen)
        buffer = {k: v[perm] for k, v in buffer.items()}
        while _rows(buffer) - self.batch_size >= keep:
            yield {k: v[: self.batch_size] for k, v in buffer.items()}
            buffer = {k: v[self.batch_size:] for k, v in buffer.items()}
        return buffer


def _rows(d: dict[str, Tensor]) -> int:
    return next(iter(d.values())).shape[0]


def _concat(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    return {k: torch.cat([p[k] for p in parts]) for k in parts[0]}


def _rank_slice(batches: Iterator[dict[str, Tensor]], rank: int, world_size: int) -> Iterator[dict[str, Tensor]]:
    """This process's share of each global batch (rows [rank*b/w, (rank+1)*b/w))."""
    for b in batches:
        share = _rows(b) // world_size
        yield {k: v[rank * share:(rank + 1) * share] for k, v in b.items()}


class ActivationStore:
    """A harvested activation folder, read shard by shard (memory bounded by the shuffle buffer)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not (self.path / MANIFEST).exists():
            raise CheckpointError(f"{self.path} has no {MANIFEST}; harvest activations into it first")
        self.manifest = json.loads((self.path / MANIFEST).read_text())
        if self.manifest.get("format") != FORMAT:
            raise CheckpointError(f"{self.path}: unknown activation store format {self.manifest.get('format')!r}")

    @property
    def hook_names(self) -> list[str]:
        return list(self.manifest["hook_names"])

    @property
    def n_tokens(self) -> int:
        return sum(s["n_tokens"] for s in self.manifest["shards"])

    @property
    def complete(self) -> bool:
        return bool(self.manifest["complete"])

    def d(self, hook_name: str) -> int:
        return int(self.manifest["d"][hook_name])

    def load_shard(self, index: int, hook_names: Sequence[str] | None = None) -> dict[str, Tensor]:
        """{hook: [n_tokens d], 'tokens': [n_seq seq]} of one shard."""
        names = list(hook_names or self.hook_names) + ["tokens"]
        with safe_open(str(self.path / self.manifest["shards"][index]["file"]), framework="pt") as f:
            return {n: f.get_tensor(n) for n in names}

    def chunks(self, hook_names: Sequence[str] | None = None, seed: int | None = 0,
               epochs: int | None = 1) -> Iterator[dict[str, Tensor]]:
        """Whole shards {hook: [n d]}, in a seeded random order each epoch (None: stored order)."""
        hook_names = list(hook_names or self.hook_names)
        unknown = set(hook_names) - set(self.hook_names)
        if unknown:
            raise InputError(f"the store at {self.path} has hooks {self.hook_names}, not {sorted(unknown)}")
        gen = torch.Generator().manual_seed(seed) if seed is not None else None
        epoch = 0
        while epochs is None or epoch < epochs:
            n = len(self.manifest["shards"])
            order = torch.randperm(n, generator=gen).tolist() if gen is not None else range(n)
            for i in order:
                shard = self.load_shard(i, hook_names)
                yield {k: shard[k] for k in hook_names}
            epoch += 1

    def batches(self, batch_size: int = 4096, hook_names: Sequence[str] | None = None, *,
                shuffle_buffer_tokens: int = 1 << 18, seed: int = 0, epochs: int | None = 1,
                rank: int = 0, world_size: int = 1) -> Iterator[dict[str, Tensor]]:
        """Shuffled training batches {hook: [batch_size // world_size d]}; batch_size is the global batch."""
        buffer = ShuffleBuffer(min(shuffle_buffer_tokens, max(self.n_tokens, 2 * batch_size)), batch_size, seed)
        return _rank_slice(buffer(self.chunks(hook_names, seed, epochs)), rank, world_size)


def stream_activations(model, token_batches: Iterable[Tensor], hook_names: Sequence[str], *,
                       batch_size: int = 4096, shuffle_buffer_tokens: int = 1 << 16, seed: int = 0,
                       drop_first_position: bool = False, rank: int = 0,
                       world_size: int = 1) -> Iterator[dict[str, Tensor]]:
    """Activations straight from the model (no disk), through a shuffle buffer: {hook: [batch d]}."""
    hook_names = list(hook_names)
    chunks = (capture_activations(model, t.to(model.device), hook_names, drop_first_position) for t in token_batches)
    return _rank_slice(ShuffleBuffer(shuffle_buffer_tokens, batch_size, seed)(chunks), rank, world_size)
