"""Cross-layer transcoders (CLT; Ameisen et al. 2025, "Circuit tracing"): one dictionary over all MLPs
of a model. Latents of layer l read that layer's MLP input and write to the MLP outputs of every
layer l' >= l, so a feature computed once can feed several later MLPs' outputs.

    x_l  = MLP input of layer l * input_scale[l]                       [n d]     (blocks.l.ln2.hook_normalized)
    f_l  = TopK_k(ReLU(x_l @ W_enc[:, l] + b_enc[l]))                  [n m]     (k per token and layer)
    y_l' = (sum_{l <= l'} f_l @ W_dec[l, l'] + b_dec[l']) / output_scale[l']     (blocks.l'.hook_mlp_out)

Stored as one transcoder from all inputs side by side [n L*d] to all outputs [n L*d]: W_enc
[d L*m] (column block l reads only x_l), W_dec [L*m L*d] masked upper block-triangular (latent
block l writes only output blocks l' >= l; the masked blocks start at zero and get zero gradient, so
they stay zero), b_enc [L*m], b_dec [L*d]; per-layer scales input_scale [L], output_scale [L]. It
trains with `SAETrainer` like a transcoder: `select_training_input(batch)` packs [x_0..x_L-1 | y_0..y_L-1]
[n 2*L*d], fire counts and dead masks run over all L*m latents. TopK only (k per layer).

    clt = create_clt(CLTConfig.for_model(d_model=64, n_layers=2, k=8))
    acts = harvest_pairs(model, tokens, [clt])      # every layer's MLP input and output, one forward
    SAETrainer({"clt": clt}, TrainerConfig(steps=500)).fit(pair_batches(acts, 256, seed=0))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from mechscope.dictionary.auxk import auxk_loss, dead_indices
from mechscope.dictionary.base import SAEOutput, SparseAutoencoder, fraction_of_variance_unexplained
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.geometric_median import geometric_median
from mechscope.errors import InputError


@dataclasses.dataclass
class CLTConfig(SAEConfig):
    """An SAEConfig for a cross-layer transcoder.

    d_in: d_model (one layer's width); d_sae: latents per layer (0: expansion_factor * d_in).
    input_hooks / output_hooks: each layer's MLP input and output hook, in layer order.
    hook_name: a name for the whole dictionary (the trainer and the CLI list it by this name).
    """

    input_hooks: tuple[str, ...] = ()
    output_hooks: tuple[str, ...] = ()
    normalize_decoder: bool = False

    def __post_init__(self):
        super().__post_init__()
        self.input_hooks, self.output_hooks = tuple(self.input_hooks), tuple(self.output_hooks)
        if self.architecture != "topk":
            raise InputError(f"cross-layer transcoders are TopK only (k per layer); got {self.architecture!r}")
        if not self.input_hooks or len(self.input_hooks) != len(self.output_hooks):
            raise InputError(f"a CLT needs one input and one output hook per layer; got {len(self.input_hooks)} inputs "
                             f"and {len(self.output_hooks)} outputs")
        if not self.hook_name:
            self.hook_name = f"clt:{self.input_hooks[0]}..{self.output_hooks[-1]}"

    @property
    def n_layers(self) -> int:
        return len(self.input_hooks)

    @classmethod
    def for_model(cls, d_model: int, n_layers: int, input_site: str = "ln2.hook_normalized", **kw) -> CLTConfig:
        """The usual CLT over every MLP of a model with n_layers blocks."""
        return cls(d_in=d_model, input_hooks=tuple(f"blocks.{layer}.{input_site}" for layer in range(n_layers)),
                   output_hooks=tuple(f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)), **kw)


class CrossLayerTranscoder(SparseAutoencoder):
    """See the module docstring; create with `create_clt(cfg)`."""

    architecture = "topk"
    is_transcoder = True
    is_cross_layer = True

    def __init__(self, cfg: CLTConfig):
        n_layers, d, m = cfg.n_layers, cfg.d_in, cfg.d_sae
        super().__init__(dataclasses.replace(cfg, d_sae=n_layers * m, input_hooks=cfg.input_hooks,
                                             output_hooks=cfg.output_hooks))
        self.cfg = cfg
        self.n_layers, self.d_layer = n_layers, m
        gen = torch.Generator().manual_seed(cfg.seed + 1)
        dec = torch.randn(n_layers * m, n_layers * d, generator=gen) / (d * n_layers) ** 0.5
        self.register_buffer("decoder_mask", torch.kron(torch.ones(n_layers, n_layers).triu(), torch.ones(m, d)))
        self.W_dec = nn.Parameter(dec * self.decoder_mask)
        self.b_enc = nn.Parameter(torch.zeros(n_layers * m))
        self.b_dec = nn.Parameter(torch.zeros(n_layers * d))
        self.input_scale = torch.ones(n_layers)
        self.register_buffer("output_scale", torch.ones(n_layers))

    @property
    def d_sae(self) -> int:
        return self.n_layers * self.d_layer

    def output_divisor(self) -> Tensor:
        return self.output_scale.repeat_interleave(self.d_in)

    # ---------------------------------------------------------------- per layer (the replacement model's view)
    def _block(self, layer: int) -> slice:
        return slice(layer * self.d_layer, (layer + 1) * self.d_layer)

    def layer_pre_activations(self, layer: int, x: Tensor) -> Tensor:
        """Layer `layer`'s MLP input [..., d] (raw units) -> its latents' pre-activations [..., m]."""
        block = self._block(layer)
        x_n = x.to(self.W_enc.dtype) * self.input_scale[layer]
        return x_n @ self.W_enc[:, block] + self.b_enc[block]

    def layer_encoder(self, layer: int) -> Tensor:
        """d(pre-activations of layer `layer`) / d(its MLP input, raw units): [d m]."""
        return self.W_enc[:, self._block(layer)] * self.input_scale[layer]

    def layer_decoder(self, source: int, target: int) -> Tensor | None:
        """What one unit of each latent of layer `source` writes to layer `target`'s MLP output (raw
        units): [m d]; None where it writes nothing there (target < source)."""
        if target < source:
            return None
        out = slice(target * self.d_in, (target + 1) * self.d_in)
        return self.W_dec[self._block(source), out] / self.output_scale[target]

    def layer_activation(self, layer: int, pre: Tensor) -> Tensor:
        """Pre-activations [..., m] of one layer -> latent activations [..., m] (ReLU of the top k)."""
        values, indices = pre.topk(self.cfg.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, indices, torch.relu(values))

    def layer_written(self, layer: int, acts: Mapping[int, Tensor], x: Tensor | None = None) -> Tensor:
        """What the CLT writes to layer `layer`'s MLP output [..., d] (raw units) from the latent
        activations {source layer <= layer: [..., m]} (missing source layers count as silent; x unused)."""
        out = slice(layer * self.d_in, (layer + 1) * self.d_in)
        total = self.b_dec[out]
        for source in range(layer + 1):
            if source in acts:
                total = total + acts[source].to(self.W_dec.dtype) @ self.W_dec[self._block(source), out]
        return total / self.output_scale[layer]

    # ---------------------------------------------------------------- the whole dictionary
    def encode(self, x: Tensor) -> Tensor:
        """All layers' MLP inputs [..., L*d] -> latent activations [..., L*m] (layer-major)."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.n_layers, self.d_in)
        acts = [self.layer_activation(layer, self.layer_pre_activations(layer, x[:, layer])) for layer in range(self.n_layers)]
        return torch.cat(acts, -1).reshape(*lead, self.d_sae)

    def decode(self, latents: Tensor) -> Tensor:
        """Latents [..., L*m] -> all layers' MLP outputs [..., L*d] in raw units."""
        lead = latents.shape[:-1]
        out = torch.addmm(self.b_dec, latents.reshape(-1, self.d_sae), self.W_dec * self.decoder_mask)
        return (out / self.output_divisor()).reshape(*lead, self.n_layers * self.d_in)

    def select_training_input(self, batch: Tensor | Mapping[str, Tensor]) -> Tensor:
        """{hook: [..., d]} (every input and output hook) or a packed tensor -> [n 2*L*d]."""
        width = self.n_layers * self.d_in
        if isinstance(batch, Mapping):
            names = self.cfg.input_hooks + self.cfg.output_hooks
            missing = [n for n in names if n not in batch]
            if missing:
                raise InputError(f"batch lacks hooks {missing} that this CLT reads; harvest every layer's MLP input "
                                 "and output (harvest_pairs)")
            return torch.cat([batch[n].reshape(-1, self.d_in) for n in names], -1)
        if batch.shape[-1] != 2 * width:
            raise InputError(f"a CLT trains on [inputs | outputs] of width {2 * width}, got {tuple(batch.shape)}")
        return batch.reshape(-1, 2 * width)

    @torch.no_grad()
    def initialize_from_data(self, xy: Tensor) -> None:
        """Per-layer input and output scales (E||x_l||^2 = d) and the output bias from pairs [n 2*L*d]."""
        n_layers, d = self.n_layers, self.d_in
        x, y = xy.to(self.W_enc.dtype).reshape(-1, 2, n_layers, d).unbind(1)
        if self.cfg.normalize_activations:
            self.input_scale.copy_((d / x.pow(2).sum(-1).mean(0).clamp_min(1e-12)).sqrt())
            self.output_scale.copy_((d / y.pow(2).sum(-1).mean(0).clamp_min(1e-12)).sqrt())
        y_n = (y * self.output_scale[:, None]).reshape(-1, n_layers * d)
        init = self.cfg.b_dec_init
        self.b_dec.copy_(geometric_median(y_n) if init == "geometric_median" else
                         y_n.mean(0) if init == "mean" else torch.zeros_like(self.b_dec))
        self.initialized.fill_(True)

    def forward(self, xy: Tensor, dead_mask: Tensor | None = None) -> SAEOutput:
        """Pairs [n 2*L*d] -> SAEOutput whose reconstruction is every layer's predicted MLP output [n L*d];
        l0 is the mean number of active latents per token and layer."""
        n_layers, d = self.n_layers, self.d_in
        xy = self.select_training_input(xy).to(self.W_enc.dtype)
        x, y = xy.reshape(-1, 2, n_layers, d).unbind(1)
        y_n = (y * self.output_scale[:, None]).reshape(-1, n_layers * d)
        pre = torch.cat([self.layer_pre_activations(layer, x[:, layer]) for layer in range(n_layers)], -1)
        latents = torch.cat([self.layer_activation(layer, p) for layer, p in enumerate(pre.split(self.d_layer, -1))], -1)   # [n L*m]
        y_hat_n = torch.addmm(self.b_dec, latents, self.W_dec * self.decoder_mask)
        active = latents > 0
        aux = y_n.new_zeros(())
        dead = dead_indices(dead_mask)
        if dead is not None:
            aux = auxk_loss(self, pre[:, dead], dead, (y_n - y_hat_n).detach())
        recon_loss = (y_hat_n - y_n).pow(2).sum(-1).mean()
        y_hat = y_hat_n / self.output_divisor()
        return SAEOutput(reconstruction=y_hat, latents=None if self.training else latents, fire_counts=active.sum(0),
                         l0=active.sum(-1).float().mean().detach() / n_layers, loss=recon_loss + aux,
                         reconstruction_loss=recon_loss.detach(), sparsity_loss=y_n.new_zeros(()),
                         auxk_loss=aux.detach(),
                         fvu=fraction_of_variance_unexplained(y.reshape(-1, n_layers * d), y_hat.detach()))


def create_clt(cfg: CLTConfig) -> CrossLayerTranscoder:
    """A freshly initialised cross-layer transcoder."""
    if not isinstance(cfg, CLTConfig):
        raise InputError("create_clt needs a CLTConfig (it carries each layer's input and output hook)")
    return CrossLayerTranscoder(cfg)
