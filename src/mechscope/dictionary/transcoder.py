"""Transcoders (Dunefsky et al. 2024; Paulo et al. 2025): a sparse dictionary that reads an MLP's
input and writes its output, so the MLP can be replaced by sparse, interpretable latents.

    x_n   = x * input_scale,   y_n = y * output_scale             (x at the MLP input, y at hook_mlp_out)
    f     = activation(x_n @ W_enc + b_enc)                          (any of the four SAE variants)
    y_hat = (f @ W_dec + b_dec [+ x_n @ W_skip]) / output_scale      (W_skip: the optional skip connection)

W_enc [d_in d_sae], W_dec [d_sae d_in], b_dec [d_in] is the output bias (never subtracted from the
input), W_skip [d_in d_in] starts at zero. An MLP reads and writes d_model, so d_out = d_in.

A transcoder is the variant's SAE class with this mixin in front: the variant supplies `activation`,
`sparsity_loss` and the AuxK loss, so relu_l1 / topk / batch_topk / jumprelu transcoders share all of
the SAE code. It trains with `SAETrainer`: the trainer asks `select_training_input(batch)` for one
tensor per token, here the input and target side by side, [n 2*d_in], so data-parallel sharding and
data-based initialisation work unchanged.

    tc = create_transcoder(TranscoderConfig(d_in=64, hook_name="blocks.0.ln2.hook_normalized",
                                            output_hook_name="blocks.0.hook_mlp_out", k=16))
    pairs = harvest_pairs(model, tokens, [tc])           # {hook: [n d]} from one forward
    SAETrainer(tc, TrainerConfig(steps=500)).fit(pair_batches(pairs, 256, seed=0))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping

import torch
from torch import Tensor, nn

from mechscope.dictionary.auxk import auxk_loss, dead_indices, sparse_auxk_loss
from mechscope.dictionary.base import SAEOutput, SparseAutoencoder
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.geometric_median import geometric_median
from mechscope.dictionary.registry import SAE_CLASSES
from mechscope.dictionary.sparse_ops import sparse_decode, topk_encode
from mechscope.errors import InputError

MLP_INPUT_SITES = ("ln2.hook_normalized", "hook_mlp_in")
"""Where an MLP transcoder reads, within blocks.L. (hook_mlp_in where the model names the MLP input)."""


@dataclasses.dataclass
class TranscoderConfig(SAEConfig):
    """An SAEConfig plus where the transcoder writes.

    hook_name: its input (the MLP's input: `blocks.L.hook_mlp_in` where the model has it, else
        `blocks.L.ln2.hook_normalized`, which is the same tensor).
    output_hook_name: what it predicts (`blocks.L.hook_mlp_out`).
    skip_connection: add a learned linear map x -> y (Paulo et al. 2025, "skip transcoders").
    """

    output_hook_name: str = ""
    skip_connection: bool = False
    normalize_decoder: bool = False   # decoder norms carry the output scale; relu_l1 weights L1 by them

    @classmethod
    def for_mlp(cls, d_model: int, layer: int, input_site: str = "ln2.hook_normalized", **kw) -> TranscoderConfig:
        """The usual MLP transcoder of block `layer`."""
        return cls(d_in=d_model, hook_name=f"blocks.{layer}.{input_site}",
                   output_hook_name=f"blocks.{layer}.hook_mlp_out", **kw)


class TranscoderMixin:
    """Put in front of an SAE variant class (see TRANSCODER_CLASSES); cfg is a TranscoderConfig."""

    is_transcoder = True

    def __init__(self, cfg: TranscoderConfig):
        super().__init__(cfg)
        self.register_buffer("output_scale", torch.ones(()))
        self.W_skip = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_in)) if cfg.skip_connection else None

    # ---------------------------------------------------------------- encode / decode
    def output_divisor(self) -> Tensor:
        return self.output_scale

    def pre_activations(self, x_n: Tensor) -> Tensor:
        """Normalised inputs [n d_in] -> pre-activations [n d_sae] (no bias is subtracted from the input)."""
        return torch.addmm(self.b_enc, x_n, self.W_enc)

    def skip(self, x: Tensor) -> Tensor:
        """The skip connection's contribution in output units, [..., d_in] -> [..., d_in] (0 without one)."""
        if self.W_skip is None:
            return torch.zeros_like(x)
        return (x.to(self.W_skip.dtype) * self.input_scale) @ self.W_skip / self.output_scale

    def transcode(self, x: Tensor) -> Tensor:
        """MLP input [..., d_in] -> predicted MLP output [..., d_in] (what replaces the MLP)."""
        return self.decode(self.encode(x)) + self.skip(x)

    # ---------------------------------------------------------------- training
    def select_training_input(self, batch: Tensor | Mapping[str, Tensor]) -> Tensor:
        """A batch dict {hook: [..., d]} (or an already packed tensor) -> [n 2*d_in] = [x | y]."""
        if isinstance(batch, Mapping):
            for name in (self.cfg.hook_name, self.cfg.output_hook_name):
                if name not in batch:
                    raise InputError(f"batch has hooks {sorted(batch)} but this transcoder needs {name!r}; "
                                     "harvest both its input and output hooks (harvest_pairs)")
            x, y = batch[self.cfg.hook_name], batch[self.cfg.output_hook_name]
            return torch.cat([x.reshape(-1, self.d_in), y.reshape(-1, self.d_in)], dim=-1)
        if batch.shape[-1] != 2 * self.d_in:
            raise InputError(f"a transcoder trains on [x | y] pairs of width {2 * self.d_in}, got {tuple(batch.shape)}")
        return batch.reshape(-1, 2 * self.d_in)

    @torch.no_grad()
    def initialize_from_data(self, xy: Tensor) -> None:
        """Fit input_scale, output_scale and the output bias on pairs [n 2*d_in] (done once)."""
        x, y = xy.to(self.W_enc.dtype).split(self.d_in, dim=-1)
        if self.cfg.normalize_activations:
            for buf, t in ((self.input_scale, x), (self.output_scale, y)):
                buf.fill_((self.d_in / t.pow(2).sum(-1).mean().clamp_min(1e-12)).sqrt())
        y_n = y * self.output_scale
        init = self.cfg.b_dec_init
        self.b_dec.copy_(geometric_median(y_n) if init == "geometric_median" else
                         y_n.mean(0) if init == "mean" else torch.zeros_like(self.b_dec))
        self.initialized.fill_(True)

    def forward(self, xy: Tensor, dead_mask: Tensor | None = None) -> SAEOutput:
        """Pairs [n 2*d_in] -> SAEOutput whose reconstruction is the predicted MLP output [n d_in]."""
        xy = xy.reshape(-1, 2 * self.d_in).to(self.W_enc.dtype)
        x, y = xy.split(self.d_in, dim=-1)
        x_n, y_n = x * self.input_scale, y * self.output_scale
        latents = None
        sparsity = x.new_zeros(())
        if self.cfg.architecture == "topk":   # sparse kernels: only the k active latents are touched
            values, indices, pre = topk_encode(x_n, self.W_enc, self.b_enc, self.cfg.k, keep_pre=True)
            acts = torch.relu(values)
            y_hat_n = sparse_decode(indices, acts, self.W_dec) + self.b_dec
            active = acts > 0
            fire_counts = torch.bincount(indices[active], minlength=self.d_sae)
            l0 = active.sum(-1).float().mean()
            if not self.training:
                latents = torch.zeros(x.shape[0], self.d_sae, dtype=acts.dtype).scatter_(-1, indices, acts)
        else:
            pre = self.pre_activations(x_n)
            latents = self.activation(pre)
            y_hat_n = torch.addmm(self.b_dec, latents, self.W_dec)
            sparsity = self.sparsity_loss(latents, pre)
            active = latents > 0
            fire_counts, l0 = active.sum(0), active.sum(-1).float().mean()
        if self.W_skip is not None:
            y_hat_n = y_hat_n + x_n @ self.W_skip
        aux = x.new_zeros(())
        dead = dead_indices(dead_mask) if self.cfg.architecture in ("topk", "batch_topk") else None
        if dead is not None:
            residual_n = (y_n - y_hat_n).detach()
            aux = (sparse_auxk_loss(self, x_n, pre, dead_mask, residual_n) if self.cfg.architecture == "topk"
                   else auxk_loss(self, pre[:, dead], dead, residual_n))
        return self._output(y, y_n, y_hat_n, latents, fire_counts, l0, sparsity, aux, y.shape[:-1])

    def auxk_loss(self, residual_n: Tensor, pre: Tensor, dead_mask: Tensor | None) -> Tensor:
        return residual_n.new_zeros(())   # computed in forward for every variant that has one


def _transcoder_class(arch: str, base: type[SparseAutoencoder]) -> type[SparseAutoencoder]:
    name = base.__name__.removesuffix("SAE") + "Transcoder"
    return type(name, (TranscoderMixin, base), {"__doc__": f"{arch} transcoder (see mechscope.dictionary.transcoder)."})


TRANSCODER_CLASSES: dict[str, type[SparseAutoencoder]] = {a: _transcoder_class(a, c) for a, c in SAE_CLASSES.items()}


def create_transcoder(cfg: TranscoderConfig) -> SparseAutoencoder:
    """A freshly initialised transcoder of cfg.architecture."""
    if not isinstance(cfg, TranscoderConfig):
        raise InputError("create_transcoder needs a TranscoderConfig (it carries output_hook_name and skip_connection)")
    if not cfg.output_hook_name:
        raise InputError("TranscoderConfig.output_hook_name is empty: say which hook it predicts, e.g. blocks.0.hook_mlp_out")
    return TRANSCODER_CLASSES[cfg.architecture](cfg)


@torch.no_grad()
def harvest_pairs(model, tokens: Tensor, transcoders, batch_size: int = 16) -> dict[str, Tensor]:
    """Input and output activations of every transcoder (or cross-layer transcoder) from one forward per batch.

    tokens [n_seq seq] -> {hook_name: [n_seq*seq d_in]} for each transcoder's two hooks.
    """
    from mechscope.data.activation_store import capture_activations

    names = sorted({n for tc in transcoders for n in dictionary_hooks(tc)})
    parts = [capture_activations(model, batch.to(model.device), names) for batch in tokens.split(batch_size)]
    return {n: torch.cat([p[n] for p in parts]) for n in names}


def dictionary_hooks(dictionary) -> tuple[str, ...]:
    """Every hook a transcoder (input, output) or a cross-layer transcoder (all inputs, all outputs) reads."""
    cfg = dictionary.cfg
    if getattr(cfg, "input_hooks", None):
        return tuple(cfg.input_hooks) + tuple(cfg.output_hooks)
    return (cfg.hook_name, cfg.output_hook_name)


def pair_batches(acts: Mapping[str, Tensor], batch_size: int, *, seed: int = 0) -> Iterator[dict[str, Tensor]]:
    """Endless shuffled minibatches {hook: [batch_size d]} of harvested activations {hook: [n d]}, rows
    kept aligned across hooks (a transcoder's input and output, a crosscoder's sources); one seed, one order."""
    n = next(iter(acts.values())).shape[0]
    gen = torch.Generator().manual_seed(seed)
    while True:
        perm = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = perm[start:start + batch_size]
            yield {k: v[idx] for k, v in acts.items()}


@torch.no_grad()
def pullback(source, target) -> Tensor:
    """Weights-only connection between two transcoders' latents (Dunefsky et al. 2024, sec. 4.2).

    [d_sae_source d_sae_target]: entry (i, j) is how much one unit of source latent i, written into
    the residual stream by its decoder, moves target latent j's pre-activation if it reached the
    target's input unchanged (norms and attention in between are ignored): d_i . e_j in raw units.
    """
    d_src = source.W_dec / source.output_divisor()          # [d_sae_s d_model], raw output units
    e_tgt = target.W_enc * target.input_scale                 # [d_model d_sae_t], per raw input unit
    return d_src @ e_tgt
