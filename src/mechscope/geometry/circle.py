"""Circular features in a model: days of the week and months of the year in "N days after X is" prompts
(Engels et al. 2024, Sections 4-5).

1. Prompts: every start X (P of them) and count N = 1..P-1, from the organism's templates and words when the
   model is an organism, else generic English; each cycle word must be one token (else NotApplicableError).
2. Activations of the X token at each residual hook; the circle probe (`circle_probe.fit_circle`) per hook.
3. At the hook with the best held-out circle R², Engels' irreducibility indices of the points projected onto
   the circle plane (`irreducibility`).
   The circle is read at one of two token sites (Engels' a and c): the X word labelled by X ("start"), or the
   last position, where the model computes the answer, labelled by X + N ("answer").
4. The intervention: at each hook, move the site's activation inside the circle plane to the point of another
   label and read whether the model now answers accordingly (X' + N for "start", the new answer for "answer";
   top-1 among the P cycle words), for every prompt and every other label.
   mode "edit" keeps everything outside the plane (`circle_plane_edit`); "engels" replaces the activation with
   the paper's patch (`engels_replacement`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch

from mechscope.errors import BatchGrowthError, InputError, NotApplicableError
from mechscope.geometry.circle_probe import CircleFit, circle_plane_edit, engels_replacement, fit_circle
from mechscope.geometry.irreducibility import mixture_index, separability_index
from mechscope.geometry.word_pairs import known_token
from mechscope.model.hook_points import GrowBatch
from mechscope.model.interventions import add_vector
from mechscope.model.names import parse
from mechscope.patching import forward_to_answer
from mechscope.patching.partial_forward import grow_rows
from mechscope.progress import progress
from mechscope.results import Result
from mechscope.tasks import vocab as V

PERIODS = {"days": 7, "months": 12}
GENERIC_MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September",
                  "October", "November", "December"]
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven"]


@dataclasses.dataclass
class CyclePrompts:
    """Prompts "N <units> after X is" for every start and count of one cycle.

    words: [P] cycle words; word_ids: [P] their tokens (with a leading space). tokens: [n pos];
    starts, counts, answers: [n] start label, N, and (start + N) mod P. position: index of X in every prompt.
    """

    kind: str
    words: list[str]
    word_ids: list[int]
    prompts: list[str]
    tokens: torch.Tensor
    starts: np.ndarray
    counts: np.ndarray
    answers: np.ndarray
    position: int

    @property
    def period(self) -> int:
        return len(self.words)


def cycle_prompts(model, kind: str = "days") -> CyclePrompts:
    """All (start, count) prompts of `kind` ("days" or "months") for this model."""
    if kind not in PERIODS:
        raise InputError(f"unknown cycle {kind!r}: use 'days' or 'months'")
    gt = V.ground_truth_for(model)
    if gt is not None:
        words = list(gt.days if kind == "days" else gt.months)
        numbers = list(gt.number_words)
        template = gt.day_template if kind == "days" else gt.month_template
        template_one = gt.day_template_one if kind == "days" else gt.month_template_one
    else:
        words = list(V.GENERIC_DAYS if kind == "days" else GENERIC_MONTHS)
        numbers = NUMBER_WORDS
        unit = "day" if kind == "days" else "month"
        template, template_one = "{N} " + unit + "s after {X} is", "One " + unit + " after {X} is"
    multi = [w for w in words if known_token(model, " " + w) is None]
    if multi:
        raise NotApplicableError(f"the {kind} circle needs every {kind[:-1]} name to be one token; "
                                 f"{', '.join(multi)} are not for this model")
    period = len(words)

    unknown = model.tokenizer.unk_token_id

    def prompt(n: int, s: int) -> str:
        """The organism's / generic form, unless it has words the vocabulary lacks (the unknown token): then
        the plural template and a lower-case number word, as word-level vocabularies have them."""
        forms = (template_one, template) if n == 1 else (template,)
        candidates = [f.format(N=w, X=words[s]) for w in (numbers[n].capitalize(), numbers[n]) for f in forms]
        for text in candidates:
            if unknown is None or unknown not in model.to_tokens(text)[0].tolist():
                return text
        return candidates[0]

    rows = [(s, n, prompt(n, s)) for s in range(period) for n in range(1, period)]
    toks = [model.to_tokens(p)[0] for _, _, p in rows]
    modal = Counter(len(t) for t in toks).most_common(1)[0][0]
    keep = [i for i, t in enumerate(toks) if len(t) == modal]
    tokens = torch.stack([toks[i] for i in keep])
    word_ids = [known_token(model, " " + w) for w in words]
    where = {int((t == word_ids[rows[i][0]]).nonzero().max()) for t, i in zip(tokens, keep, strict=True)}
    if len(where) != 1:
        raise InputError(f"the {kind} prompts put the {kind[:-1]} at different positions {sorted(where)}; "
                         "use templates where the count is one token")
    starts = np.array([rows[i][0] for i in keep])
    counts = np.array([rows[i][1] for i in keep])
    return CyclePrompts(kind=kind, words=words, word_ids=word_ids, prompts=[rows[i][2] for i in keep],
                        tokens=tokens, starts=starts, counts=counts, answers=(starts + counts) % period,
                        position=where.pop())


TOKENS = ("start", "answer")


def site(cp: CyclePrompts, token: str = "start") -> tuple[int, np.ndarray]:
    """(position, labels [n]) of the circle read at `token`: "start" = the X word, labelled by X (Engels'
    circle in a); "answer" = the last position, where the model computes X + N, labelled by the answer (their c)."""
    if token == "start":
        return cp.position, cp.starts
    if token == "answer":
        return cp.tokens.shape[1] - 1, cp.answers
    raise InputError(f"unknown token {token!r}: use 'start' (the day/month word) or 'answer' (the last position)")


def cycle_activations(model, cp: CyclePrompts, hooks: Sequence[str], token: str = "start") -> dict[str, np.ndarray]:
    """hook -> [n d] activation at the `token` site (see `site`)."""
    position, _ = site(cp, token)
    _, cache = model.run_with_cache(cp.tokens.to(model.device), names=list(hooks))
    return {h: cache[h][:, position].detach().double().cpu().numpy() for h in hooks}


def _top1(logits: torch.Tensor) -> torch.Tensor:
    """[b] index (0..P-1) of the highest-scoring cycle word, from the cycle words' logits [b P]."""
    return logits.argmax(-1).cpu()


def task_accuracy(model, cp: CyclePrompts) -> float:
    """Top-1 accuracy among the P cycle words on the unedited prompts."""
    logits = forward_to_answer(model, cp.tokens.to(model.device), [], -1, grad=False, vocab=cp.word_ids)[0]
    return float((_top1(logits).numpy() == cp.answers).mean())


def circle_intervention(model, cp: CyclePrompts, hook: str, acts: np.ndarray, fit: CircleFit,
                        mode: str = "edit", token: str = "start") -> tuple[float, np.ndarray]:
    """Move each prompt's label to every other label on the circle, at the `token` site; returns (top-1
    accuracy among the cycle words on the answer the move implies: X' + N for "start", the new answer itself
    for "answer"; [m] logit(new answer) - logit(old answer) per edited prompt).

    The P moved runs share everything below `hook`: they are grown from the block the hook feeds
    (`moved_answer_logits`), so the blocks below run once for all of them."""
    if mode not in ("edit", "engels"):
        raise InputError(f"unknown intervention mode {mode!r}: use 'edit' or 'engels'")
    position, labels = site(cp, token)
    moved = [circle_plane_edit(acts, fit, np.full(len(labels), new)) if mode == "edit"
             else np.repeat(engels_replacement(fit, [new]), len(labels), axis=0) for new in range(cp.period)]
    deltas = torch.from_numpy(np.stack(moved) - acts[None]).to(model.device, model.dtype)      # [P n d]
    grown = moved_answer_logits(model, cp.tokens.to(model.device), hook, position, deltas, cp.word_ids)
    correct, diffs = [], []
    for new in range(cp.period):
        rows = np.flatnonzero(labels != new)
        if grown is not None:
            logits = grown[new, rows].float()
        else:   # one run per label over its rows (the model cannot grow its batch at this hook)
            edit = add_vector(deltas[new, rows][:, None, :], positions=[position])   # [b 1 d] at the site
            with model.hooks(fwd={hook: edit}):     # the last position's cycle-word logits only
                logits = forward_to_answer(model, cp.tokens[rows].to(model.device), [], -1, grad=False,
                                           vocab=cp.word_ids)[0].float()
        target = (new + cp.counts[rows]) % cp.period if token == "start" else np.full(len(rows), new)
        correct.append(_top1(logits).numpy() == target)
        new_ids = torch.as_tensor(target, device=logits.device)               # columns of the cycle words
        old_ids = torch.as_tensor(cp.answers[rows], device=logits.device)
        pick = torch.arange(len(rows), device=logits.device)
        diffs.append((logits[pick, new_ids] - logits[pick, old_ids]).cpu().numpy())
    return float(np.concatenate(correct).mean()), np.concatenate(diffs)


def moved_answer_logits(model, tokens: torch.Tensor, hook: str, position: int, deltas: torch.Tensor,
                        vocab: list[int] | None = None) -> torch.Tensor | None:
    """Last-position logits [k n d_vocab] (of `vocab`'s tokens only: [k n len(vocab)]) of k runs of tokens
    [n pos], run j adding deltas[j] [n d_model] at `position` of the residual `hook`
    (blocks.0.hook_resid_pre or blocks.L.hook_resid_post). The base rows run
    up to the block the hook feeds and grow there into k copies (`patching.grow_rows`), so the blocks below
    run once for all k. None when the hook feeds no block (the last resid_post) or the model cannot grow
    its batch (a per-row input such as a padding mask): the caller then runs each edit from the input."""
    point = parse(hook)
    layer = point.layer if point.site == "hook_resid_pre" else point.layer + 1
    if point.layer is None or point.site not in ("hook_resid_pre", "hook_resid_post") or layer >= model.cfg.n_layers:
        return None
    n, k = tokens.shape[0], deltas.shape[0]

    def move(grown: torch.Tensor) -> torch.Tensor:
        grown[n:, position] += deltas.reshape(k * n, -1).to(grown.dtype)
        return grown

    try:
        with model.hooks(fwd={f"blocks.{layer}.hook_resid_pre": GrowBatch(grow_rows(n, 1, k, move))}):
            logits = forward_to_answer(model, tokens, [], -1, grad=False, vocab=vocab)[0]
    except BatchGrowthError:
        return None
    return logits[n:].view(k, n, -1)


@dataclasses.dataclass
class CircleResult(Result):
    """The circle probe at every residual hook and the intervention there, at one token site (`site`).

    hooks: [L] hooks examined; r2, heldout_r2, control_r2, intervention_accuracy: [L] per hook (accuracy NaN
    where the probe is degenerate, e.g. the same activation for every prompt).
    best_hook: the hook with the highest held-out R²; order / order_exact / class_angles at it.
    task_accuracy: unedited top-1 accuracy among the cycle words. mixture_index / separability_index:
    Engels' indices of the points in the circle plane at best_hook (separability in bits).
    plane: [n 2] the points in that plane; labels: [n] their start labels.
    """

    kind: str
    token: str
    period: int
    words: list[str]
    n_prompts: int
    hooks: list[str]
    r2: list[float]
    heldout_r2: list[float]
    control_r2: list[float]
    intervention_accuracy: list[float]
    best_hook: str
    order: list[int]
    order_exact: bool
    task_accuracy: float
    mixture_index: float
    separability_index: float
    plane: np.ndarray
    pca_plane: np.ndarray
    labels: np.ndarray

    _json_exclude = ("plane", "pca_plane", "labels")

    @property
    def best(self) -> int:
        return self.hooks.index(self.best_hook)

    def figure(self):
        """The activations at best_hook in their top-2 PCA plane and in the probe's circle plane, coloured by X."""
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=(f"PCA plane ({self.best_hook})", "circle-probe plane"))
        for col, pts in ((1, self.pca_plane), (2, self.plane)):
            for c, word in enumerate(self.words):
                sel = self.labels == c
                fig.add_trace(go.Scatter(x=pts[sel, 0], y=pts[sel, 1], mode="markers", name=word,
                                         legendgroup=word, showlegend=col == 1,
                                         marker={"size": 8, "color": c, "cmin": 0, "cmax": self.period - 1,
                                                 "colorscale": "HSV"}), row=1, col=col)
        i = self.best
        fig.update_layout(title=(f"{self.kind} at the {self.token} token: circle R² {self.r2[i]:.2f} (held-out {self.heldout_r2[i]:.2f}, "
                                 f"shuffled {self.control_r2[i]:.2f}), intervention accuracy "
                                 f"{self.intervention_accuracy[i]:.2f}"))
        fig.update_yaxes(scaleanchor="x")
        return fig


def residual_hooks(model) -> list[str]:
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{i}.hook_resid_post" for i in range(model.cfg.n_layers)]


def circle_features(model, kind: str = "days", *, token: str = "start", hooks: Sequence[str] | None = None,
                    n_components: int = 5, mode: str = "edit", seed: int = 0,
                    mixture_steps: int = 10_000) -> CircleResult:
    """Circle probe, irreducibility and intervention for the `kind` cycle at the `token` site, at each of
    `hooks` (default: the embedding and every block's resid_post)."""
    cp = cycle_prompts(model, kind)
    _, labels = site(cp, token)
    hooks = list(hooks or residual_hooks(model))
    acts = cycle_activations(model, cp, hooks, token)
    fits = {h: fit_circle(acts[h], labels, cp.period, n_components=n_components, seed=seed) for h in hooks}
    accuracy = [float("nan") if fits[h].degenerate else circle_intervention(model, cp, h, acts[h], fits[h], mode,
                                                                               token)[0]
                for h in progress(hooks, desc=f"{kind} circle: interventions at the {token} site")]
    usable = [h for h in hooks if not fits[h].degenerate] or hooks
    best = max(usable, key=lambda h: fits[h].heldout_r2)
    fit = fits[best]
    plane = (acts[best] - fit.mean) @ fit.plane_basis().T
    spread = not fit.degenerate and float(plane.var()) > 0
    return CircleResult(
        kind=kind, token=token, period=cp.period, words=cp.words, n_prompts=len(cp.prompts), hooks=hooks,
        r2=[fits[h].r2 for h in hooks], heldout_r2=[fits[h].heldout_r2 for h in hooks],
        control_r2=[fits[h].control_r2 for h in hooks], intervention_accuracy=accuracy, best_hook=best,
        order=fit.order, order_exact=fit.order_exact, task_accuracy=task_accuracy(model, cp),
        mixture_index=mixture_index(plane, n_steps=mixture_steps, seed=seed).index if spread else float("nan"),
        separability_index=separability_index(plane).index if spread else float("nan"), plane=plane,
        pca_plane=fit.scores[:, :2],
        labels=labels)
