"""Train SAEs on a model's activations: the one pipeline the CLI (`mechscope sae train`) and the claims call.

    saes, history = train_on_model(model, tokens, SAEPipelineConfig(hooks=("blocks.2.hook_resid_post",)),
                                   TrainerConfig(steps=2000))

1. Read each hook's width from one forward pass on the first sequence.
2. Create one SAE per hook × architecture, named "ARCH@HOOK" (all from one config, seeded).
3. Feed them all from one shuffled activation stream, re-shuffled every epoch over `tokens`, from
   one of three sources: "stream" (a forward pass per chunk of 16 sequences, every epoch; no disk,
   data-parallel by rank), "memory" (one pass, the activations kept in memory: fastest for small
   runs, one process), or a harvested store on disk (`store=DIR`, written by rank 0, read by all).
4. Train them together with SAETrainer (checkpoints and resumes through TrainerConfig.checkpoint_dir).

A caller that needs the training activations too (C20 fits a PCA on them) harvests them once with
`harvest_in_memory(model, tokens, hooks)` and passes them as `train_on_model(..., activations=chunks)`.

`train_saes(configs, batches, trainer)` is step 2 and 4 alone, for activations that do not come from
a model's hooks (e.g. embeddings built by hand).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Literal

from torch import Tensor

from mechscope.dictionary.base import SparseAutoencoder
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.registry import create_sae
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.training_history import TrainingHistory
from mechscope.errors import InputError

DICTIONARY_KINDS = ("sae", "transcoder", "crosscoder", "clt")


@dataclasses.dataclass
class SAEPipelineConfig:
    """What to train: one SAE per hook × architecture, and where their activations come from.

    hooks: hook points whose activations to decompose.
    architectures: SAE architectures (see dictionary.ARCHITECTURES); every one is trained on every hook.
    expansion_factor, k, l1_coefficient, l0_coefficient, dead_after_tokens: as in SAEConfig.
    batch_size: activation rows (tokens) per step, summed over data-parallel ranks.
    activations: "stream" (recompute every epoch) or "memory" (harvest once, keep in memory).
    store: harvest to this directory first and train from disk (overrides `activations`).
    shuffle_buffer_tokens: rows mixed at a time by the shuffle buffer ("stream" and "memory").
    seed: seeds SAE initialisation and the shuffle of epoch e (seed + e).
    kind: "sae" (one per hook); "transcoder" (hooks are MLP inputs, blocks.L.ln2.hook_normalized or
        blocks.L.hook_mlp_in; each predicts blocks.L.hook_mlp_out); "crosscoder" (one over all hooks);
        "clt" (one cross-layer transcoder: hooks are the MLP inputs of consecutive layers, in order;
        TopK only, k per layer).
    skip_connection: transcoders only (see TranscoderConfig).
    """

    hooks: tuple[str, ...]
    architectures: tuple[str, ...] = ("topk",)
    expansion_factor: int = 8
    k: int = 32
    l1_coefficient: float = 2.0
    l0_coefficient: float = 1.0
    dead_after_tokens: int = 1_000_000
    batch_size: int = 4096
    activations: Literal["stream", "memory"] = "stream"
    store: str | None = None
    shuffle_buffer_tokens: int = 1 << 16
    seed: int = 0
    kind: Literal["sae", "transcoder", "crosscoder", "clt"] = "sae"
    skip_connection: bool = False

    def __post_init__(self):
        self.hooks, self.architectures = tuple(self.hooks), tuple(self.architectures)
        if not self.hooks or not self.architectures:
            raise InputError("SAEPipelineConfig needs at least one hook and one architecture")
        if self.kind not in DICTIONARY_KINDS:
            raise InputError(f"kind={self.kind!r}: use one of {DICTIONARY_KINDS}")
        if self.kind == "crosscoder" and len(self.hooks) < 2:
            raise InputError("a crosscoder reads several hooks: pass at least two")
        if self.activations not in ("stream", "memory"):
            raise InputError(f"activations={self.activations!r}: use 'stream' or 'memory' (or store=DIR)")


def train_saes(configs: Mapping[str, SAEConfig], batches: Iterable[Tensor | Mapping[str, Tensor]],
               trainer: TrainerConfig) -> tuple[dict[str, SparseAutoencoder], TrainingHistory]:
    """Create one SAE per named config and train them together on `batches` (see SAETrainer.fit)."""
    saes = {name: create_dictionary(cfg) for name, cfg in configs.items()}
    history = SAETrainer(saes, trainer).fit(batches)
    return saes, history


def harvest_in_memory(model, tokens: Tensor, hooks) -> list[dict[str, Tensor]]:
    """The activations `activations="memory"` trains on: one {hook: [16*seq d]} per chunk of 16 sequences
    of tokens [n_seq seq], on the CPU. Pass them to `train_on_model(..., activations=)` to reuse them."""
    from mechscope.data.activation_store import capture_activations

    return [capture_activations(model, chunk.to(model.device), list(hooks)) for chunk in tokens.split(16)]


def training_hooks(cfg: SAEPipelineConfig) -> tuple[str, ...]:
    """Every hook the dictionaries of cfg read: the hooks, plus each MLP's output for transcoders."""
    if cfg.kind in ("transcoder", "clt"):
        return cfg.hooks + tuple(_mlp_output(h) for h in cfg.hooks)
    return cfg.hooks


def train_on_model(model, tokens: Tensor, cfg: SAEPipelineConfig, trainer: TrainerConfig, *,
                   rank: int = 0, world_size: int = 1, activations: list[dict[str, Tensor]] | None = None,
                   ) -> tuple[dict[str, SparseAutoencoder], TrainingHistory]:
    """SAEs {"ARCH@HOOK": sae} trained on the model's activations over tokens [n_seq seq], and their curves.

    Under data parallelism pass this process's rank and the world size; each rank reads its share of
    every global batch of cfg.batch_size rows. `activations`: chunks from `harvest_in_memory(model,
    tokens, training_hooks(cfg))`, already harvested (cfg.activations must be "memory"); no forward pass
    is run then.
    """
    reads = training_hooks(cfg)
    batches, widths = _activation_batches(model, tokens, dataclasses.replace(cfg, hooks=reads), rank, world_size,
                                          activations)
    spec = getattr(model, "spec", "") or ""
    common = dict(expansion_factor=cfg.expansion_factor, k=cfg.k, l1_coefficient=cfg.l1_coefficient,
                  l0_coefficient=cfg.l0_coefficient, model_name=spec, dead_after_tokens=cfg.dead_after_tokens,
                  seed=cfg.seed)
    if cfg.kind == "transcoder":
        from mechscope.dictionary.transcoder import TranscoderConfig

        configs = {f"transcoder_{arch}@{hook}": TranscoderConfig(
            d_in=widths[hook], architecture=arch, hook_name=hook, output_hook_name=_mlp_output(hook),
            skip_connection=cfg.skip_connection, **common) for hook in cfg.hooks for arch in cfg.architectures}
    elif cfg.kind == "clt":
        from mechscope.dictionary.clt import CLTConfig

        if len({widths[h] for h in cfg.hooks}) != 1:
            raise InputError(f"a CLT's layers must have one width; got {[widths[h] for h in cfg.hooks]}")
        configs = {f"clt_{arch}": CLTConfig(d_in=widths[cfg.hooks[0]], architecture=arch, input_hooks=cfg.hooks,
                                            output_hooks=tuple(_mlp_output(h) for h in cfg.hooks), **common)
                   for arch in cfg.architectures}
    elif cfg.kind == "crosscoder":
        from mechscope.dictionary.crosscoder import CrosscoderConfig

        if len({widths[h] for h in cfg.hooks}) != 1:
            raise InputError(f"crosscoder sources must have one width; got {[widths[h] for h in cfg.hooks]}")
        configs = {f"crosscoder_{arch}": CrosscoderConfig(
            d_in=sum(widths[h] for h in cfg.hooks), architecture=arch, sources=cfg.hooks, **common)
            for arch in cfg.architectures}
    else:
        configs = {f"{arch}@{hook}": SAEConfig(d_in=widths[hook], architecture=arch, hook_name=hook, **common)
                   for hook in cfg.hooks for arch in cfg.architectures}
    return train_saes(configs, batches, trainer)


def create_dictionary(cfg: SAEConfig):
    """An SAE, transcoder, cross-layer transcoder or crosscoder, by the type of its config."""
    from mechscope.dictionary.clt import CLTConfig, create_clt
    from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder
    from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder

    if isinstance(cfg, CLTConfig):
        return create_clt(cfg)
    if isinstance(cfg, TranscoderConfig):
        return create_transcoder(cfg)
    if isinstance(cfg, CrosscoderConfig):
        return create_crosscoder(cfg)
    return create_sae(cfg)


def _mlp_output(hook: str) -> str:
    """blocks.L.ln2.hook_normalized / blocks.L.hook_mlp_in -> blocks.L.hook_mlp_out."""
    from mechscope.dictionary.transcoder import MLP_INPUT_SITES
    from mechscope.model.names import parse

    point = parse(hook)
    if point.layer is None or point.site not in MLP_INPUT_SITES:
        raise InputError(f"a transcoder reads an MLP input, blocks.L.{MLP_INPUT_SITES[0]} (or blocks.L.hook_mlp_in); "
                         f"got {hook!r}")
    return f"blocks.{point.layer}.hook_mlp_out"


def _activation_batches(model, tokens: Tensor, cfg: SAEPipelineConfig, rank: int, world_size: int,
                        cached: list[dict[str, Tensor]] | None) -> tuple[Iterator[dict[str, Tensor]], dict[str, int]]:
    """An endless iterator of {hook: [batch_size // world_size d]} and each hook's width d."""
    from mechscope import distributed as ddp
    from mechscope.data.activation_store import (
        ActivationStore,
        ShuffleBuffer,
        capture_activations,
        harvest_activations,
        stream_activations,
    )

    hooks = list(cfg.hooks)
    if cached is not None:
        if cfg.activations != "memory" or cfg.store is not None:
            raise InputError("activations= (already harvested) trains from memory: set SAEPipelineConfig("
                             "activations='memory') and no store")
        missing = sorted(set(hooks) - set(cached[0]) if cached else set(hooks))
        if missing:
            raise InputError(f"the harvested activations lack hooks {missing}; harvest "
                             "harvest_in_memory(model, tokens, training_hooks(cfg))")
        cached = [{h: c[h] for h in hooks} for c in cached]
    if cfg.store is not None:
        if rank == 0:
            harvest_activations(model, tokens, hooks, Path(cfg.store))
        ddp.barrier()
        store = ActivationStore(cfg.store)
        batches = store.batches(cfg.batch_size, hooks, seed=cfg.seed, epochs=None, rank=rank, world_size=world_size)
        return batches, {h: store.d(h) for h in hooks}
    chunks = tokens.split(16)
    if cfg.activations == "memory":
        if world_size > 1:
            raise InputError("activations='memory' runs in one process; under data parallelism pass store=DIR "
                             "or activations='stream'")
        if cached is None:
            cached = harvest_in_memory(model, tokens, hooks)
        return (_forever(lambda epoch: ShuffleBuffer(cfg.shuffle_buffer_tokens, cfg.batch_size,
                                                     seed=cfg.seed + epoch)(iter(cached))),
                {h: cached[0][h].shape[1] for h in hooks})
    probe = capture_activations(model, tokens[:1].to(model.device), hooks)
    return (_forever(lambda epoch: stream_activations(
        model, chunks, hooks, batch_size=cfg.batch_size, shuffle_buffer_tokens=cfg.shuffle_buffer_tokens,
        seed=cfg.seed + epoch, rank=rank, world_size=world_size)),
        {h: probe[h].shape[1] for h in hooks})


def _forever(one_epoch: Callable[[int], Iterable[dict[str, Tensor]]]) -> Iterator[dict[str, Tensor]]:
    """Epoch 0, 1, 2, ... of batches, one after the other, without end."""
    epoch = 0
    while True:
        yield from one_epoch(epoch)
        epoch += 1
