"""Train one MLP transcoder per layer of a model from one pass over its text: the pipeline that
attribution graphs, C21, C15 and `mechscope graph` share.

    tcs = train_mlp_transcoders(model, tokens, TranscoderRun(steps=500))    # {layer: transcoder}, eval mode
"""

from __future__ import annotations

import dataclasses

from torch import Tensor

from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder, harvest_pairs, pair_batches


@dataclasses.dataclass
class TranscoderRun:
    """architecture, k (0: d_model // 16, at least 4), expansion_factor or d_sae (0: expansion_factor x
    d_model), skip_connection: the transcoders; steps, batch_size, lr: training; layers: None for every layer."""

    architecture: str = "topk"
    k: int = 0
    expansion_factor: int = 8
    d_sae: int = 0
    skip_connection: bool = False
    steps: int = 300
    batch_size: int = 256
    lr: float = 2e-3
    layers: tuple[int, ...] | None = None
    seed: int = 0
    show_progress: bool | None = None

    def k_for(self, d_model: int) -> int:
        """The TopK k used at this width: run.k, or d_model // 16 (at least 4)."""
        return self.k or max(4, d_model // 16)


def train_mlp_transcoders(model, tokens: Tensor, run: TranscoderRun | None = None) -> dict[int, object]:
    """Transcoders MLP-in -> MLP-out for run.layers, trained together on tokens [n_seq seq]; eval mode."""
    run = run or TranscoderRun()
    d = model.cfg.d_model
    layers = run.layers if run.layers is not None else tuple(range(model.cfg.n_layers))
    k = run.k_for(d)
    tcs = {layer: create_transcoder(TranscoderConfig.for_mlp(
        d, layer, architecture=run.architecture, k=k, expansion_factor=run.expansion_factor, d_sae=run.d_sae,
        skip_connection=run.skip_connection, seed=run.seed + layer, dead_after_tokens=20 * run.batch_size,
        model_name=getattr(model, "spec", "") or "")) for layer in layers}
    pairs = harvest_pairs(model, tokens, tcs.values())
    SAETrainer({f"L{layer}": tc for layer, tc in tcs.items()},
               TrainerConfig(steps=run.steps, lr=run.lr, warmup_steps=min(20, run.steps // 10),
                             show_progress=run.show_progress)).fit(
        pair_batches(pairs, min(run.batch_size, next(iter(pairs.values())).shape[0]), seed=run.seed))
    return {layer: tc.eval() for layer, tc in tcs.items()}
