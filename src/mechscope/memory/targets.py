"""What ROME and MEMIT compute before an edit: context prefixes, keys at the subject, and the shift of
a hidden state that makes the model say the new target.

- `context_prefixes`: short texts sampled from the model itself (seeded), so a key is averaged over
  the contexts a subject is met in, as in the reference code ("" is always the first prefix).
- `subject_keys`: the down-projection input (``mlp.hook_post``) at the subject's last token of
  prefix + prompt, averaged over prefixes: k*. ``position="last"`` reads the prompt's last token
  instead (the reference's fact_token="last"), for memories written after attention has moved the
  subject to the end.
- `optimize_shift`: a vector δ added to one hook point (the MLP output for ROME, the residual for
  MEMIT) at the subject's last token of every prefixed prompt, trained by Adam to minimise
  -log P(new target) + kl_factor * KL(P_δ || P) on "{subject} is a" at the subject's last token
  + weight_decay * |δ| / |h|², with |δ| clamped to clamp_norm_factor * |h| (h: the hook point's
  value at the plain prompt), as in the reference.
"""

from __future__ import annotations

import dataclasses
from contextlib import contextmanager

import torch

from mechscope.errors import InputError
from mechscope.memory.prompts import Fact, check_prompt, subject_span, target_id
from mechscope.model.axes import RowPositions
from mechscope.model.interventions import add_vector
from mechscope.tasks.answer import forward_to_answer


@dataclasses.dataclass
class ShiftConfig:
    n_prefixes: int = 10          # sampled context prefixes besides the empty one
    prefix_tokens: int = 10       # tokens per sampled prefix
    steps: int = 20               # loss evaluations (steps - 1 Adam updates, as the reference)
    lr: float = 0.5
    kl_factor: float = 0.0625
    weight_decay: float = 0.5
    clamp_norm_factor: float = 4.0
    stop_loss: float = 0.05       # stop early once the total loss is below this
    kl_prompt: str = "{} is a"
    position: str = "subject_last"   # where the key is read and δ added: "subject_last" or "last" (token)
    seed: int = 0


def context_prefixes(model, config: ShiftConfig) -> list[str]:
    """[""] + `n_prefixes` texts of `prefix_tokens` sampled tokens each, ending with ". "."""
    if config.n_prefixes == 0:
        return [""]
    start = "" if model.bos_token_id is not None else "The"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        out = model.generate([start] * config.n_prefixes, do_sample=True, max_new_tokens=config.prefix_tokens,
                             top_k=5)
    skip = len(model.to_tokens(start)[0])
    texts = [model.tokenizer.decode(row[skip:].tolist()).replace("\n", " ").strip() for row in out]
    return [""] + [t + ". " for t in texts]


POSITIONS = ("subject_last", "last")


def prefixed(model, fact: Fact, prefixes: list[str], position: str = "subject_last") -> list[tuple[list[int], int]]:
    """(token ids, index of the edited position) of prefix + prompt for each prefix; position is
    "subject_last" (the subject's last token) or "last" (the prompt's last token)."""
    if position not in POSITIONS:
        raise InputError(f"position {position!r}: use one of {', '.join(POSITIONS)}")
    rows = []
    for p in prefixes:
        ids, _, end = subject_span(model, p + fact.prompt, fact.subject)
        check_prompt(model, ids)
        rows.append((ids, end - 1 if position == "subject_last" else len(ids) - 1))
    return rows


def _batch(rows: list[tuple[list[int], int]], pad: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    tokens = torch.full((len(rows), width), pad, dtype=torch.long)
    for i, (ids, _) in enumerate(rows):
        tokens[i, : len(ids)] = torch.tensor(ids)
    return tokens, torch.tensor([i for _, i in rows]), torch.tensor([len(ids) - 1 for ids, _ in rows])


def subject_keys(model, layer: int, facts: list[Fact], prefixes: list[str], position: str = "subject_last"
                 ) -> torch.Tensor:
    """[n_facts d_mlp] k*: mean over prefixes of mlp.hook_post at the subject's last token (or the
    last token, position="last"), float64."""
    name = f"blocks.{layer}.mlp.hook_post"
    out = []
    for fact in facts:
        rows = prefixed(model, fact, prefixes, position)
        tokens, at, _ = _batch(rows, model.tokenizer.eos_token_id or 0)
        _, cache = model.run_with_cache(tokens.to(model.device), names=name)
        out.append(cache[name][torch.arange(len(rows)), at].double().mean(0).cpu())
    return torch.stack(out)


def state_at_subject(model, hook_name: str, facts: list[Fact], position: str = "subject_last") -> torch.Tensor:
    """[n_facts d] the hook point's value at the edited position of each plain prompt (float64)."""
    out = []
    for fact in facts:
        ((ids, at),) = prefixed(model, fact, [""], position)
        _, cache = model.run_with_cache(torch.tensor([ids], device=model.device), names=hook_name)
        out.append(cache[hook_name][0, at].double().cpu())
    return torch.stack(out)


@contextmanager
def frozen(model):
    """Parameters with requires_grad off for the block (restored after), so only δ gets a graph."""
    params = [p for p in model.hf_model.parameters() if p.requires_grad]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


@dataclasses.dataclass
class Shift:
    delta: torch.Tensor           # [d] float32
    init: torch.Tensor            # [d] the hook point at the plain prompt
    losses: list[float]
    final_prob: float             # mean P(target) over the prefixed prompts at the last step


def optimize_shift(model, hook_name: str, fact: Fact, new_target: str, prefixes: list[str],
                   config: ShiftConfig) -> Shift:
    """δ at `hook_name` (a [batch pos d] point) that makes prefix + prompt answer `new_target`."""
    target = target_id(model, new_target)
    rows = prefixed(model, fact, prefixes, config.position)
    kl_rows = prefixed(model, Fact(config.kl_prompt.format(fact.subject), fact.subject, new_target), [""],
                       config.position)
    tokens, at, last = _batch(rows + kl_rows, model.tokenizer.eos_token_id or 0)
    tokens, n = tokens.to(model.device), len(rows)
    init = state_at_subject(model, hook_name, [fact], config.position)[0].float().to(model.device)
    # only the read positions are unembedded: each prompt's last token, each KL prompt's edited token
    read = torch.cat([last[:n], at[n:]])
    kl_init = forward_to_answer(model, tokens[n:], [], at[n:], grad=False)[0].float().log_softmax(-1)
    delta = torch.zeros_like(init, requires_grad=True)
    opt = torch.optim.Adam([delta], lr=config.lr)
    max_norm = config.clamp_norm_factor * init.norm()
    losses: list[float] = []

    prob = 0.0
    with frozen(model), torch.enable_grad():
        for step in range(config.steps):
            with model.hooks(fwd={hook_name: add_vector(delta, positions=RowPositions(at))}):
                logits = forward_to_answer(model, tokens, [], read, grad=None)[0]   # [rows d_vocab]
            logp = logits[:n].float().log_softmax(-1)[:, target]
            nll = -logp.mean()
            kl_new = logits[n:].float().log_softmax(-1)
            kl = torch.nn.functional.kl_div(kl_init, kl_new, log_target=True, reduction="batchmean")
            loss = nll + config.kl_factor * kl + config.weight_decay * delta.norm() / init.norm() ** 2
            losses.append(float(loss.detach()))
            prob = float(logp.detach().exp().mean())
            if float(loss.detach()) < config.stop_loss or step == config.steps - 1:
                break                  # as the reference: the last evaluated δ is the one kept
            opt.zero_grad()
            loss.backward()
            opt.step()
            with torch.no_grad():
                if delta.norm() > max_norm:
                    delta.mul_(max_norm / delta.norm())
    return Shift(delta=delta.detach().clone(), init=init.detach(), losses=losses, final_prob=prob)
