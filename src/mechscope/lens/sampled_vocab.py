"""KL to the final distribution on a sampled vocabulary: the cheap training signal for lenses.

On a 50k vocabulary the unembedding dominates tuned-lens training: every step multiplies
[points x tokens, d_model] by [d_model, d_vocab] forward and backward. Training instead on a vocabulary
sample S (the final distribution's top-k tokens of every row in the step, filled up with tokens drawn
uniformly at random) costs |S| / d_vocab of that. The loss is KL(final|S || lens|S), both
distributions renormalised over S: it is zero exactly when the lens matches the final distribution on
S up to a constant, so it has the same minimiser as the full KL wherever the lens can reach it.

It is a training signal only: every number a claim reads is the exact full-vocabulary KL
(logit_lens.run_lens). The gap between the two on trained lenses is measured in
tests/lens/test_sampled_vocab.py and stated in the cost model of claim C01.
"""

from __future__ import annotations

import torch


def top_tokens(model, final_resid: torch.Tensor, k: int, chunk: int = 1024) -> torch.Tensor:
    """[n k] ids of the k most likely next tokens of the model at each row of final_resid [n d_model]
    (the last residual point), computed once in chunks of `chunk` rows without gradients."""
    with torch.no_grad():
        return torch.cat([model.unembed(model.ln_final(part)).topk(k, dim=-1).indices
                          for part in final_resid.split(chunk)])


def sample_vocab(top: torch.Tensor, size: int, d_vocab: int, generator: torch.Generator) -> torch.Tensor:
    """Sorted distinct token ids: every id in `top` [rows k], then uniform draws up to `size` in all
    (all ids when size >= d_vocab)."""
    if size >= d_vocab:
        return torch.arange(d_vocab, device=top.device)
    chosen = torch.zeros(d_vocab, dtype=torch.bool)
    chosen[top.flatten().cpu()] = True
    missing = size - int(chosen.sum())
    if missing > 0:
        rest = (~chosen).nonzero().squeeze(1)
        chosen[rest[torch.randperm(len(rest), generator=generator)[:missing]]] = True
    return chosen.nonzero().squeeze(1).to(top.device)


class VocabHead:
    """The unembedding restricted to the token ids `vocab` [v] (the model's full head when None):
    `head(x)` gives the logits [... v] of the normalised residual x [... d_model], bias and final-logit
    softcapping included. The columns are gathered once, so a training step reuses them for every point."""

    def __init__(self, model, vocab: torch.Tensor | None):
        self.model, self.vocab = model, vocab
        self.cap = getattr(model.hf_model.config, "final_logit_softcapping", None)
        if vocab is not None:
            self.W = model.W_U[:, vocab].contiguous()
            self.b = model.b_U[vocab]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.vocab is None:
            return self.model.unembed(x)
        logits = x @ self.W.to(x.dtype) + self.b.to(x.dtype)
        return torch.tanh(logits / self.cap) * self.cap if self.cap else logits


def unembed_columns(model, x: torch.Tensor, vocab: torch.Tensor | None) -> torch.Tensor:
    """Logits of the normalised residual x [... d_model] for the token ids `vocab` [v] only ([... v]);
    vocab None gives the model's full head (model.unembed). Matches model.unembed on those columns."""
    return VocabHead(model, vocab)(x)
