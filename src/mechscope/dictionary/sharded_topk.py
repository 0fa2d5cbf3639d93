"""A TopK SAE whose latents are split across processes (latent, or tensor, parallelism): for
dictionaries too wide for one device.

Rank r of w holds latents [r*m, (r+1)*m), m = d_sae / w: its columns of W_enc and b_enc and its rows
of W_dec; b_dec and the scales are replicated. Every rank sees the *same* batch. One forward:

1. local pre-activations [n m] and the local top k (values and global indices);
2. all-gather the candidates, [n w*k]; the global top k is among them, so a top k over the
   candidates is exactly the TopK of the unsharded SAE;
3. each rank decodes the selected latents it owns; the partial reconstructions are summed over ranks
   (all-reduce) into the full one, identical everywhere.

The loss is then the same number on every rank, and back-propagation through the rank's own partial
reconstruction gives its shard the exact gradient of that loss (the all-reduced rest is a constant).
The encoder input x - b_dec feeds every rank's latents, so its gradient is summed over ranks on the
way back (identity forward, all-reduce backward: Megatron's "f"), which gives the replicated b_dec
the whole gradient on every rank. No gradient is averaged: `SAETrainer` skips the all-reduce, the initial broadcast and the fire-count
sum for a dictionary with `latent_sharded = True`, and Adam on each shard is Adam on the slice. AuxK
(dead latents) runs the same gather-select-reduce over the dead latents. With w = 1 this is `TopKSAE`.

    sae = ShardedTopKSAE(SAEConfig(d_in=768, d_sae=2**20, k=32))    # under torchrun, every rank
    SAETrainer({"wide": sae}, cfg).fit(batches)                       # the same batches on every rank
    full = sae.gather_state()                                         # the whole SAE's tensors (every rank)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from mechscope import distributed as ddp
from mechscope.dictionary.auxk import dead_indices
from mechscope.dictionary.base import SAEOutput
from mechscope.dictionary.config import SAEConfig
from mechscope.dictionary.sparse_ops import sparse_decode
from mechscope.dictionary.topk import TopKSAE
from mechscope.errors import InputError


class _SumGradientOverRanks(torch.autograd.Function):
    """Identity forward; backward sums the gradient over ranks (for a tensor every shard reads)."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:
        return ddp.all_reduce_sum(grad)


class ShardedTopKSAE(TopKSAE):
    """See the module docstring. The shard is this process's rank of the default process group."""

    latent_sharded = True

    def __init__(self, cfg: SAEConfig):
        if cfg.architecture != "topk":
            raise InputError(f"latent sharding is implemented for TopK SAEs; got {cfg.architecture!r}")
        world, rank = ddp.world_size(), ddp.rank()
        if cfg.d_sae % world:
            raise InputError(f"d_sae={cfg.d_sae} does not split evenly over {world} ranks; pick a multiple of {world}")
        super().__init__(cfg)                  # the full, seeded initialisation; then keep this rank's slice
        m = cfg.d_sae // world
        self.offset, self.d_local = rank * m, m
        block = slice(self.offset, self.offset + m)
        with torch.no_grad():
            self.W_enc = nn.Parameter(self.W_enc[:, block].T.contiguous().T)   # latent-major storage, as TopKSAE
            self.W_dec = nn.Parameter(self.W_dec[block].contiguous())
            self.b_enc = nn.Parameter(self.b_enc[block].clone())

    @property
    def d_sae(self) -> int:
        """Latents held by this rank (the trainer's per-latent statistics are per shard)."""
        return self.d_local

    def _select_and_decode(self, pre: Tensor, k: int, W_dec: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """pre [n m_local] -> (the full reconstruction [n d_in], differentiable through this rank's
        latents; this rank's selected local indices [n k] (-1 where another rank owns the latent);
        their activations [n k])."""
        values, local = pre.topk(min(k, pre.shape[1]), dim=-1, sorted=False)
        cand_v = ddp.all_gather_cat(values.detach().T.contiguous()).T               # [n w*k]
        cand_i = ddp.all_gather_cat((local + self.offset).T.contiguous()).T
        top = cand_v.topk(k, dim=-1, sorted=False).indices
        chosen = cand_i.gather(1, top) - self.offset                                  # [n k] local index or out of range
        mine = (chosen >= 0) & (chosen < pre.shape[1])
        safe = chosen.clamp(0, pre.shape[1] - 1)
        acts = torch.relu(pre.gather(1, safe)) * mine
        partial = sparse_decode(safe, acts, W_dec)
        full = partial + (ddp.all_reduce_sum(partial.detach()) - partial.detach())
        return full, torch.where(mine, chosen, -1), acts

    def forward(self, x: Tensor, dead_mask: Tensor | None = None) -> SAEOutput:
        """x [..., d_in] (the same on every rank) -> SAEOutput; fire_counts [m_local] for this rank's latents."""
        lead = x.shape[:-1]
        x = x.reshape(-1, self.d_in).to(self.W_enc.dtype)
        x_n = x * self.input_scale
        x_in = _SumGradientOverRanks.apply(x_n - self.b_dec)
        pre = torch.addmm(self.b_enc, x_in, self.W_enc)
        recon_n, chosen, acts = self._select_and_decode(pre, self.cfg.k, self.W_dec)
        recon_n = recon_n + self.b_dec
        fired = (chosen >= 0) & (acts > 0)
        fire_counts = torch.bincount(chosen[fired], minlength=self.d_local)
        l0 = ddp.all_reduce_sum(fired.sum(-1).float()).mean()
        latents = None
        if not self.training:
            latents = torch.zeros(x.shape[0], self.d_local, dtype=acts.dtype).scatter_(
                -1, chosen.clamp_min(0), acts).reshape(*lead, self.d_local)
        auxk = acts.new_zeros(())
        if dead_mask is not None and bool(ddp.all_reduce_sum(dead_mask.any().long()) > 0):
            dead = dead_indices(dead_mask)
            dead = dead if dead is not None else torch.zeros(0, dtype=torch.long)
            pre_dead = torch.full_like(pre, float("-inf"))
            pre_dead[:, dead] = pre[:, dead]                  # only dead latents can be chosen
            n_dead = int(ddp.all_reduce_sum(torch.tensor(dead.numel())))
            e_hat, _, _ = self._select_and_decode(pre_dead, min(self.cfg.auxk_k, n_dead), self.W_dec)
            auxk = self.cfg.auxk_coefficient * (e_hat - (x_n - recon_n).detach()).pow(2).sum(-1).mean()
        return self._output(x, x_n, recon_n, latents, fire_counts, l0, acts.new_zeros(()), auxk, lead)

    @torch.no_grad()
    def gather_state(self) -> dict[str, Tensor]:
        """The unsharded SAE's tensors {W_enc [d_in d_sae], W_dec, b_enc, b_dec, input_scale} on every rank."""
        return {"W_enc": ddp.all_gather_cat(self.W_enc.T.contiguous()).T, "W_dec": ddp.all_gather_cat(self.W_dec),
                "b_enc": ddp.all_gather_cat(self.b_enc), "b_dec": self.b_dec.clone(),
                "input_scale": self.input_scale.clone()}
