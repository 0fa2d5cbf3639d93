"""Day-of-week arithmetic: "Three days after Friday is" -> " Monday".

Corrupt: the same count after another day (wrong answer: that prompt's answer). On an organism the
templates and words come from its ground truth. positions: "day" (the start day), "END".
"""

from __future__ import annotations

import random

import torch

from mechscope.errors import NotApplicableError
from mechscope.tasks import vocab as V
from mechscope.tasks.base import Task, keep_modal_length, single_token_words


def days_task(model, n_prompts: int = 32, seed: int = 0, metric: str = "logit_diff") -> Task:
    gt = V.ground_truth_for(model)
    if gt is not None and not gt.day_template:
        raise NotApplicableError("this organism's corpus had no day arithmetic (its ground truth lists no day "
                                 "template); run the days task on tiny-gpt2 or a model trained on such text")
    if gt is not None:
        days, numbers = gt.days, gt.number_words
        template, template_one = gt.day_template, gt.day_template_one
    else:
        days, numbers = V.GENERIC_DAYS, V.GENERIC_NUMBER_WORDS
        template, template_one = V.GENERIC_DAY_TEMPLATE, V.GENERIC_DAY_TEMPLATE_ONE
    single_token_words(model, days, need=7, what="day names", task="day arithmetic")
    rng = random.Random(seed)
    records = []
    for _ in range(4 * n_prompts):
        n = rng.randint(1, 6)
        start, other = rng.sample(range(7), 2)
        form = template_one if n == 1 else template
        number = numbers[n].capitalize()
        records.append({"clean": form.format(N=number, X=days[start]),
                        "corrupt": form.format(N=number, X=days[other]),
                        "answer": days[(start + n) % 7], "wrong": days[(other + n) % 7]})
    keep, clean_tok, corrupt_tok = keep_modal_length(model, [(r["clean"], r["corrupt"]) for r in records])
    keep, clean_tok, corrupt_tok = keep[:n_prompts], clean_tok[:n_prompts], corrupt_tok[:n_prompts]
    tok = model.tokenizer
    clean = torch.tensor(clean_tok)
    corrupt = torch.tensor(corrupt_tok)
    day_pos = torch.tensor([int((c != x).nonzero().max()) for c, x in zip(clean, corrupt, strict=True)])
    return Task(
        name="days", metric=metric, clean_tokens=clean, corrupt_tokens=corrupt,
        answer_ids=torch.tensor([tok.encode(" " + records[i]["answer"], add_special_tokens=False)[0] for i in keep]),
        wrong_ids=torch.tensor([tok.encode(" " + records[i]["wrong"], add_special_tokens=False)[0] for i in keep]),
        clean_prompts=[records[i]["clean"] for i in keep], corrupt_prompts=[records[i]["corrupt"] for i in keep],
        positions={"day": day_pos, "END": torch.full((len(keep),), clean.shape[1] - 1)},
        description="day-of-week arithmetic; corrupt prompt starts from another day")
