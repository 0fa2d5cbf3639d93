"""Docstring argument completion (Heimersheim & Janiak 2023).

    def port(self, load, size, files, last):
        \"\"\"oil column piece

        :param load: crime population
        :param size: unit dark
        :param                       -> " files"

The corrupt prompt renames the arguments in the signature (the docstring lines keep the clean
names), so only the signature tells the model which name comes next; the wrong answer is the
corrupt signature's argument at the answer's place. On an organism the function layout and
argument names come from its ground truth.
"""

from __future__ import annotations

import random

import torch

from mechscope.errors import InputError, NotApplicableError
from mechscope.tasks import vocab as V
from mechscope.tasks.base import Task, keep_modal_length, single_token_words


def docstring_task(model, n_prompts: int = 32, seed: int = 0, n_args: int = 3,
                   metric: str = "logit_diff", wrong: str = "corrupt") -> Task:
    """Prompts that stop after the (n_args)-th ':param'; answer: the n_args-th argument.
    positions: "def_arg" (the answer's name in the signature), "END".

    wrong: the competing name. "corrupt": the corrupt signature's argument at the answer's place
    (the corrupt prompt's answer; it never appears in the clean prompt). "signature": the clean
    signature's next, not yet documented argument, a name the clean prompt does contain, so the
    logit diff asks whether the model picks the right one of the names it sees."""
    if wrong not in ("corrupt", "signature"):
        raise InputError(f"wrong must be 'corrupt' or 'signature', got {wrong!r}")
    gt = V.ground_truth_for(model)
    arg_pool = gt.docstring["arg_names"] if gt is not None else V.GENERIC_ARG_NAMES
    args = single_token_words(model, arg_pool, need=2 * n_args + 2, what="argument names", task="docstring")
    rng = random.Random(seed)
    records = []
    for _ in range(4 * n_prompts):
        clean_args = rng.sample(args, n_args + 1)
        others = [a for a in args if a not in clean_args]
        corrupt_args = rng.sample(others, n_args + 1)
        if gt is not None:
            func = f"{rng.choice(gt.docstring['function_verbs'])}_{rng.choice(args)}"
            descs = [f"the {rng.choice(args)} to use" for _ in range(n_args)]
            summary = f"{func.split('_')[0].capitalize()} the {clean_args[0]}."
        else:
            func = rng.choice(V.GENERIC_FUNCTION_NAMES)
            descs = [" ".join(rng.sample(V.GENERIC_DESC_WORDS, 2)) for _ in range(n_args)]
            summary = " ".join(rng.sample(V.GENERIC_DESC_WORDS, 3))
        records.append({
            "clean": _prompt(func, clean_args, clean_args[: n_args - 1], descs, summary),
            "corrupt": _prompt(func, corrupt_args, clean_args[: n_args - 1], descs, summary),
            "answer": clean_args[n_args - 1],
            "wrong": corrupt_args[n_args - 1] if wrong == "corrupt" else clean_args[n_args]})
    keep, clean_tok, corrupt_tok = keep_modal_length(model, [(r["clean"], r["corrupt"]) for r in records])
    keep, clean_tok, corrupt_tok = keep[:n_prompts], clean_tok[:n_prompts], corrupt_tok[:n_prompts]
    if len(keep) < min(4, n_prompts):
        raise NotApplicableError("docstring prompts do not tokenize to equal lengths for this model")
    tok = model.tokenizer
    answers = [tok.encode(" " + records[i]["answer"], add_special_tokens=False)[0] for i in keep]
    wrongs = [tok.encode(" " + records[i]["wrong"], add_special_tokens=False)[0] for i in keep]
    def_pos = []
    for toks, ans in zip(clean_tok, answers, strict=True):
        hits = [i for i, t in enumerate(toks) if t == ans]
        def_pos.append(hits[0] if hits else -1)
    n = len(keep)
    return Task(
        name="docstring", metric=metric, clean_tokens=torch.tensor(clean_tok),
        corrupt_tokens=torch.tensor(corrupt_tok), answer_ids=torch.tensor(answers),
        wrong_ids=torch.tensor(wrongs),
        clean_prompts=[records[i]["clean"] for i in keep], corrupt_prompts=[records[i]["corrupt"] for i in keep],
        positions={"def_arg": torch.tensor(def_pos), "END": torch.full((n,), len(clean_tok[0]) - 1)},
        description=f"docstring next-argument ({'organism' if gt is not None else 'generic'} vocabulary)")


def _prompt(func: str, signature: list[str], documented: list[str], descs: list[str], summary: str) -> str:
    lines = [f"def {func}(self, {', '.join(signature)}):", f'    """{summary}', ""]
    lines += [f"    :param {a}: {d}" for a, d in zip(documented, descs, strict=False)]
    return "\n".join(lines) + "\n    :param"
