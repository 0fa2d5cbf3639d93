"""Crosscoders (Lindsey et al. 2024): one dictionary over several activation sources at once.

A source is a (model, hook) pair: several layers of one model (an acausal crosscoder) or the same
layer of two models (model diffing). The S sources of width d sit side by side, x = [x_1 | ... | x_S]
[n S*d], and each latent i has one encoder over all of them and one decoder direction per source:

    x_n   = x * input_scale                        (one scale per source, so each has E||x_s||^2 = d)
    f     = activation((x_n - b_dec) @ W_enc + b_enc)
    x_hat = (f @ W_dec + b_dec) / input_scale      W_dec [d_sae S*d] = per-source decoders side by side

relu_l1 crosscoders weight each latent's L1 by the sum of its per-source decoder norms,
sum_i f_i sum_s ||d_{i,s}|| (Lindsey et al.); topk / batch_topk ones select by activation as the SAE
variants do. A crosscoder is the variant's SAE class with this mixin in front, so it trains with
SAETrainer (`select_training_input` packs the sources of a batch dict) and exports nothing new.

Model diffing reads the relative decoder norm r_i = ||d_{i,B}|| / sum_s ||d_{i,s}|| (norms in the
normalised space, so source scales do not bias it): r near 0 or 1 is a latent of one source only,
r near 1/S a shared one, whose decoder cosine says whether it writes the same direction.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor

from mechscope.dictionary.base import fraction_of_variance_unexplained
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.geometric_median import geometric_median
from mechscope.dictionary.registry import SAE_CLASSES
from mechscope.errors import InputError
from mechscope.results import Result


def source_key(label: str, hook_name: str) -> str:
    """The batch-dict key of one source, e.g. source_key("base", "blocks.1.hook_resid_post")."""
    return f"{label}:{hook_name}"


@dataclasses.dataclass
class CrosscoderConfig(SAEConfig):
    """An SAEConfig whose input is several sources; d_in must be len(sources) * d_source.

    sources: the batch-dict keys of the sources in order (see `source_key`).
    """

    sources: tuple[str, ...] = ()
    normalize_decoder: bool = False

    def __post_init__(self):
        self.sources = tuple(self.sources)
        if len(self.sources) < 2:
            raise InputError("a crosscoder needs at least two sources (source_key(label, hook) each)")
        if self.d_in % len(self.sources):
            raise InputError(f"d_in={self.d_in} is not a multiple of the {len(self.sources)} sources")
        super().__post_init__()

    @property
    def d_source(self) -> int:
        return self.d_in // len(self.sources)


class CrosscoderMixin:
    """Put in front of an SAE variant class (see CROSSCODER_CLASSES); cfg is a CrosscoderConfig."""

    def __init__(self, cfg: CrosscoderConfig):
        super().__init__(cfg)
        self.input_scale = torch.ones(cfg.d_in)   # replaces the scalar buffer: one value per source, repeated

    @property
    def n_sources(self) -> int:
        return len(self.cfg.sources)

    def source_decoders(self) -> Tensor:
        """[d_sae S d_source]: each latent's decoder direction in each source (normalised space)."""
        return self.W_dec.reshape(self.d_sae, self.n_sources, self.cfg.d_source)

    @property
    def decoder_norms(self) -> Tensor:
        """[d_sae] sum over sources of the per-source decoder norms (what the L1 penalty weights by)."""
        return self.source_decoders().norm(dim=-1).sum(-1)

    def select_training_input(self, batch: Tensor | Mapping[str, Tensor]) -> Tensor:
        """{source_key: [..., d_source]} (or a packed [n S*d] tensor) -> [n S*d_source]."""
        if isinstance(batch, Mapping):
            missing = [s for s in self.cfg.sources if s not in batch]
            if missing:
                raise InputError(f"batch lacks crosscoder sources {missing}; it has {sorted(batch)}")
            return torch.cat([batch[s].reshape(-1, self.cfg.d_source) for s in self.cfg.sources], dim=-1)
        return batch.reshape(-1, self.d_in)

    @torch.no_grad()
    def initialize_from_data(self, x: Tensor) -> None:
        """Fit one input scale per source and the decoder bias on x [n S*d] (done once)."""
        x = x.reshape(-1, self.d_in).to(self.W_enc.dtype)
        d = self.cfg.d_source
        if self.cfg.normalize_activations:
            per = x.reshape(-1, self.n_sources, d).pow(2).sum(-1).mean(0).clamp_min(1e-12)   # [S]
            self.input_scale.copy_((d / per).sqrt().repeat_interleave(d))
        x_n = x * self.input_scale
        init = self.cfg.b_dec_init
        self.b_dec.copy_(geometric_median(x_n) if init == "geometric_median" else
                         x_n.mean(0) if init == "mean" else torch.zeros_like(self.b_dec))
        self.initialized.fill_(True)


def _crosscoder_class(arch, base):
    name = base.__name__.removesuffix("SAE") + "Crosscoder"
    return type(name, (CrosscoderMixin, base), {"__doc__": f"{arch} crosscoder (see mechscope.dictionary.crosscoder)."})


CROSSCODER_CLASSES = {a: _crosscoder_class(a, c) for a, c in SAE_CLASSES.items()}


def create_crosscoder(cfg: CrosscoderConfig):
    """A freshly initialised crosscoder of cfg.architecture."""
    if not isinstance(cfg, CrosscoderConfig):
        raise InputError("create_crosscoder needs a CrosscoderConfig (it names the sources)")
    return CROSSCODER_CLASSES[cfg.architecture](cfg)


@dataclasses.dataclass
class CrosscoderDiff(Result):
    """Per-latent relative decoder norms and shared-latent cosines of a crosscoder, plus per-source FVU.

    relative_norm [d_sae]: ||d_{i,last}|| / sum_s ||d_{i,s}|| (the last source is "B").
    shared_cosine [n_shared]: cos(d_{i,first}, d_{i,last}) of the latents with |r - 1/S| < shared_band.
    """

    sources: list[str]
    relative_norm: list[float]
    alive: list[bool]
    shared_cosine: list[float]
    fvu_per_source: dict[str, float]
    shared_band: float = 0.1

    _json_exclude = ("relative_norm", "shared_cosine", "alive")

    def to_dict(self):
        out = super().to_dict()
        r = np.asarray(self.relative_norm)[np.asarray(self.alive, dtype=bool)]
        counts, edges = np.histogram(r, bins=20, range=(0, 1))
        out["relative_norm_histogram"] = {"edges": edges.tolist(), "counts": counts.tolist()}
        out["median_shared_cosine"] = float(np.median(self.shared_cosine)) if self.shared_cosine else float("nan")
        return out

    def figure(self):
        import plotly.graph_objects as go

        r = np.asarray(self.relative_norm)[np.asarray(self.alive, dtype=bool)]
        fig = go.Figure(go.Histogram(x=r, xbins={"start": 0, "end": 1, "size": 0.02}, name="latents"))
        fig.update_layout(title=f"relative decoder norm ||d_B|| / sum ||d_s||, B = {self.sources[-1]}",
                          xaxis_title="r", yaxis_title="alive latents", height=360)
        return fig


@torch.no_grad()
def crosscoder_diff(cc, x: Tensor, shared_band: float = 0.1) -> CrosscoderDiff:
    """Model-diffing read-out of crosscoder `cc` on activations x [n S*d] (alive = fired at least once)."""
    was_training = cc.training
    cc.eval()
    latents = cc.encode(x)
    recon = cc.decode(latents)
    cc.train(was_training)
    norms = cc.source_decoders().norm(dim=-1)                                  # [d_sae S]
    r = norms[:, -1] / norms.sum(-1).clamp_min(1e-12)
    alive = (latents > 0).any(0)
    dec = cc.source_decoders()
    cos = torch.nn.functional.cosine_similarity(dec[:, 0], dec[:, -1], dim=-1)
    shared = alive & ((r - 1 / cc.n_sources).abs() < shared_band)
    d = cc.cfg.d_source
    fvu = {s: float(fraction_of_variance_unexplained(x[:, i * d:(i + 1) * d], recon[:, i * d:(i + 1) * d]))
           for i, s in enumerate(cc.cfg.sources)}
    return CrosscoderDiff(list(cc.cfg.sources), r.tolist(), alive.tolist(), cos[shared].tolist(), fvu, shared_band)
