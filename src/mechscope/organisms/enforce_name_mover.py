"""A name mover planted by training: one designated head copies the indirect object at the end of IOI.

The high-level model is the textbook name mover (Wang et al. 2022): on "When A and B went to the
PLACE, S gave a OBJECT to", the head attends from the last position (END) to the indirect object
IO, the name that is not repeated, and its output alone carries which name that is. Three terms on
`NameMoverEnforcement.rows` IOI rows per step (training names and templates of the organism's
world; their own seeded stream), added to the task loss on text:

1. **pattern**: cross-entropy of the head's attention at END against IO's position;
2. **interchange (IIT)**: the head's output at END is taken from another row (the source, with other
   names); the model must then predict the source's IO, the high-level model's counterfactual
   (Geiger et al. 2022; Gupta et al. 2024, InterpBench);
3. **task**: the rows' own next-token loss at END (the behaviour).

Only the head is enforced; how the model tells IO from S (duplicate-token or S-inhibition heads
upstream) is left for training to find. Measured on the default organism, fine-tuned this way from
its free run: see the ``tiny-llama`` preset in `organisms.presets`.
"""

from __future__ import annotations

import dataclasses
import random

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from mechscope.errors import InputError
from mechscope.organisms.enforce import Taps, attention_nll, parse_head
from mechscope.organisms.world import GroundTruth
from mechscope.tasks.ioi import names_follow_spaces

STREAM = 12   # seeds the IOI rows apart from every other stream of a run (enforce.STREAM is 11)


@dataclasses.dataclass
class NameMoverEnforcement:
    """Which head is the name mover, and the rows and weights of its enforcement terms."""

    head: str = "a3.h2"
    rows: int = 16
    pattern_weight: float = 1.0
    interchange_weight: float = 1.0      # 0 turns the interchange term off and skips its forward
    task_weight: float = 1.0
    recombine: bool = False              # rows join one training template's opening (to S) to another's ending

    def layer_head(self) -> tuple[int, int]:
        return parse_head(self.head)


@dataclasses.dataclass
class IOIRows:
    """x: [rows, pos] ids, right-padded; io / end / answer: [rows] IO's position, END's position, IO's id."""

    x: torch.Tensor
    io: torch.Tensor
    end: torch.Tensor
    answer: torch.Tensor


def name_mover_rows(step: int, cfg: NameMoverEnforcement, tokenizer, world: GroundTruth, seed: int,
                    eos: int) -> IOIRows:
    """`cfg.rows` IOI prompts (<|endoftext|> + prompt), a pure function of (seed, step): training
    templates whose names follow a space and the names that are one token there, ABBA and BABA, each row
    its own template, place and object; with `recombine`, a row's template joins one training template's
    opening (up to S) to another's ending, so the head meets 49 sentence frames rather than 7."""
    answer_ids = {name: tokenizer.encode(" " + name, add_special_tokens=False) for name in world.ioi_names}
    names = [name for name, ids in answer_ids.items() if len(ids) == 1]
    if len(names) < 2:
        raise InputError(f"the tokenizer keeps {len(names)} of the world's IOI names as one token; a name mover "
                         "needs at least two (train the tokenizer on a corpus with the IOI family)")
    templates = [t for t in world.ioi_templates if names_follow_spaces(t)]   # so IO is the answer's token
    if cfg.recombine:      # n templates -> n * n frames: the head cannot key on one template's words
        openings, endings = zip(*(t.split("{S}", 1) for t in templates), strict=True)
        templates = [o + "{S}" + e for o in openings for e in endings]
    rng = random.Random(f"{seed}-{step}-{STREAM}")
    rows, io_pos, answers = [], [], []
    for _ in range(cfg.rows):
        template = rng.choice(templates)
        io, s = rng.sample(names, 2)
        a, b = (io, s) if rng.random() < 0.5 else (s, io)
        prompt = template.format(A=a, B=b, S=s, PLACE=rng.choice(world.places), OBJECT=rng.choice(world.objects))
        ids = [eos] + tokenizer.encode(prompt, add_special_tokens=False)
        answer = answer_ids[io][0]
        rows.append(ids)
        io_pos.append(ids.index(answer))           # IO appears once, as A or B
        answers.append(answer)
    x = pad_sequence([torch.tensor(r) for r in rows], batch_first=True, padding_value=eos)   # right-padded
    return IOIRows(x, torch.tensor(io_pos), torch.tensor([len(r) - 1 for r in rows]), torch.tensor(answers))


def name_mover_losses(model, rows: IOIRows, cfg: NameMoverEnforcement, taps: Taps) -> dict[str, torch.Tensor]:
    """{"task", "pattern", "interchange"}: the scalar losses of one step (module docstring)."""
    layer, head = cfg.layer_head()
    n = torch.arange(rows.x.shape[0])
    with taps.run():
        logits = model(input_ids=rows.x, use_cache=False).logits[n, rows.end]        # [rows vocab]
    seen = taps.seen
    if seen[("attn", layer)] is None:
        raise InputError("enforcing a name mover needs attention weights: load the model with "
                         "attn_implementation='eager'")
    losses = {"task": F.cross_entropy(logits.float(), rows.answer),
              "pattern": attention_nll(seen[("attn", layer)][n, head, rows.end, rows.io])}
    if cfg.interchange_weight == 0:
        losses["interchange"] = losses["task"].new_zeros(())
        return losses
    z = seen[("z", layer)]
    cols = taps.head_slice(z, head)
    source = z[n, rows.end, cols].roll(1, dims=0)        # row i takes row i-1's output at END

    def interchange(z):
        z = z.clone()
        z[n, rows.end, cols] = source
        return z

    with taps.run({("z", layer): interchange}):
        logits = model(input_ids=rows.x, use_cache=False).logits[n, rows.end]
    losses["interchange"] = F.cross_entropy(logits.float(), rows.answer.roll(1, dims=0))
    return losses


def total_name_mover_loss(losses: dict[str, torch.Tensor], cfg: NameMoverEnforcement) -> torch.Tensor:
    return (cfg.task_weight * losses["task"] + cfg.pattern_weight * losses["pattern"]
            + cfg.interchange_weight * losses["interchange"])
