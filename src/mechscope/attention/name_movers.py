"""Name-mover-like heads (Wang et al. 2022): at the last position they attend to the indirect
object and write its name into the logits.

score = mean over prompts of attention(END -> IO) x direct logit effect on logit(IO) - logit(S),
where the direct effect is the head's output at END through the final norm (linearised with the
cached scale) and the unembedding. Negative scores mark negative name movers.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.attention.detectors import HeadScores
from mechscope.results import Result


@dataclasses.dataclass
class NameMoverScores(Result):
    """All [n_layers n_heads]: attention END -> IO, END -> S (both occurrences), direct logit
    effect on IO - S, and score = mean(attention_to_io * logit_effect)."""

    attention_to_io: torch.Tensor
    attention_to_s: torch.Tensor
    logit_effect: torch.Tensor
    score: torch.Tensor
    n_prompts: int

    def as_head_scores(self) -> HeadScores:
        return HeadScores("name-mover", self.score, "attention(END->IO) x direct logit effect (IO - S)")

    def figure(self):
        return self.as_head_scores().figure()


def name_mover_scores(model, task) -> NameMoverScores:
    """task: an IOI task (needs positions IO, S1, S2, END); reads the clean prompts."""
    L = model.cfg.n_layers
    names = ([f"blocks.{layer}.attn.hook_z" for layer in range(L)] + [f"blocks.{layer}.attn.hook_pattern" for layer in range(L)]
             + ["ln_final.hook_scale"])
    tokens = task.clean_tokens.to(model.device)
    with torch.no_grad():
        _, cache = model.run_with_cache(tokens, names=names)
        n = tokens.shape[0]
        rows = torch.arange(n)
        end, io = task.positions["END"], task.positions["IO"]
        s1, s2 = task.positions["S1"], task.positions["S2"]
        att_io = torch.zeros(L, model.cfg.n_heads)
        att_s = torch.zeros_like(att_io)
        effect = torch.zeros_like(att_io)
        score = torch.zeros_like(att_io)
        W_O = model.W_O
        for layer in range(L):
            pattern = cache[f"blocks.{layer}.attn.hook_pattern"].float().cpu()          # [b H q k]
            a_io = pattern[rows, :, end, io]                                        # [b H]
            a_s = pattern[rows, :, end, s1] + pattern[rows, :, end, s2]
            z = cache[f"blocks.{layer}.attn.hook_z"]                                    # [b pos H d_head]
            result = torch.einsum("bphd,hdm->hbpm", z, W_O[layer])                     # [H b pos d_model]
            normed = cache.apply_ln_to_stack(result)                                # final norm, linearised
            at_end = normed[:, rows, end.to(normed.device)]                         # [H b d_model]
            dla = cache.logit_attrs(at_end, task.answer_ids.to(at_end.device),
                                    task.wrong_ids.to(at_end.device)).float().cpu().T   # [b H]
            att_io[layer], att_s[layer] = a_io.mean(0), a_s.mean(0)
            effect[layer] = dla.mean(0)
            score[layer] = (a_io * dla).mean(0)
    return NameMoverScores(attention_to_io=att_io, attention_to_s=att_s, logit_effect=effect, score=score,
                           n_prompts=n)
