"""Removing LayerNorm by fine-tuning (Heimersheim 2024, "You can remove GPT2's LayerNorm by fine-tuning").

Norms are frozen one at a time (every block's ln2, then every ln1, then ln_final), each to its
average scale measured just before it is frozen, with fine-tuning steps in between and after the
last. The control is a plain fine-tune of the same length, data and learning rate, so the
comparison isolates the cost of having no norms from the effect of more training. The model's
weights are restored at the end; the norm-free weights can be saved as a checkpoint.

Cost model: 2 x steps fine-tuning steps (forward + backward + AdamW over all weights, each linear in
layers x tokens), plus one calibration forward per freezing event and calibration batch, stopped at
the event's deepest norm (no later block, no unembedding: at the 12-layer 135M shape C16's calibrations
took 11 instead of 37 CPU s). With one event per norm (groups=None) that is 2 x n_layers + 1 forwards,
each up to its norm: quadratic in depth. `groups` freezes consecutive norms of the order together
(each group calibrated in one pass, its norms measured with the earlier groups frozen), so a fixed
number of groups keeps it linear.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from pathlib import Path

import torch

from mechscope.data.text import token_batches
from mechscope.errors import InputError
from mechscope.lens.frozen_norms import FrozenNorms, calibrate_many, save_norm_free
from mechscope.progress import progress
from mechscope.results import Result


@dataclasses.dataclass
class NormRemovalConfig:
    steps: int = 200                 # fine-tune steps of each run (norm-free and control)
    removal_fraction: float = 0.5    # norms are frozen one by one over this share of the steps
    lr: float = 3e-4
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    calibration_batches: int = 2     # batches used to measure each norm's average scale
    groups: int | None = None        # freeze the norms in at most this many groups (None: one at a time)
    seed: int = 0


@dataclasses.dataclass
class NormRemovalResult(Result):
    """Held-out next-token cross-entropy (nats) of four models.

    ce_original: the model as given.   ce_frozen_untrained: every norm frozen at once, no fine-tune.
    ce_control: after a plain fine-tune.   ce_norm_free: after the norm-removal fine-tune (no norms).
    scales: site -> frozen scale (positions >= 1) and first_scale (position 0).
    losses_*: training loss per step.
    overflow: model -> share of held-out predictions whose logits were not finite ("original",
    "frozen_untrained", "control", "norm_free"); each ce_* is over that model's finite predictions.
    """

    ce_original: float
    ce_frozen_untrained: float
    ce_control: float
    ce_norm_free: float
    steps: int
    sites: list[str]
    scales: dict[str, dict[str, float]]
    losses_norm_free: list[float]
    losses_control: list[float]
    checkpoint: str | None = None
    overflow: dict[str, float] = dataclasses.field(default_factory=dict)

    @property
    def gap(self) -> float:
        """Cost of removing the norms: norm-free CE minus control CE."""
        return self.ce_norm_free - self.ce_control

    def figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("held-out cross-entropy", "training loss"))
        names = ["original", "norms frozen, no fine-tune", "control fine-tune", "norm-free fine-tune"]
        values = [self.ce_original, self.ce_frozen_untrained, self.ce_control, self.ce_norm_free]
        fig.add_trace(go.Bar(x=names, y=values, showlegend=False, text=[f"{v:.3f}" for v in values]), 1, 1)
        steps = list(range(1, len(self.losses_control) + 1))
        fig.add_trace(go.Scatter(x=steps, y=self.losses_control, name="control"), 1, 2)
        fig.add_trace(go.Scatter(x=steps, y=self.losses_norm_free, name="norm removal"), 1, 2)
        fig.update_layout(title="removing the norms by fine-tuning")
        return fig


def removal_order(model) -> list[str]:
    """Every ln2, then every ln1, then ln_final."""
    sites = list(model.norms())
    return ([s for s in sites if s.endswith("ln2")] + [s for s in sites if s.endswith("ln1")] + ["ln_final"])


def freezing_groups(order: list[str], groups: int | None) -> list[list[str]]:
    """`order` cut into at most `groups` consecutive runs of near-equal length (None: one site each)."""
    n = len(order) if groups is None else max(1, min(groups, len(order)))
    bounds = [round(i * len(order) / n) for i in range(n + 1)]
    return [order[a:b] for a, b in zip(bounds, bounds[1:], strict=False) if b > a]


def freeze_in_order(model, groups: list[list[str]], batches: list[torch.Tensor], frozen: FrozenNorms) -> None:
    """Freeze each group in turn at its average divisor, measured with the earlier groups frozen."""
    for group in groups:
        frozen.scales.update(calibrate_many(model, group, batches, frozen))


def next_token_ce(model, batches: list[torch.Tensor], frozen: FrozenNorms | None = None) -> float:
    """Mean next-token cross-entropy over batches, with `frozen` norms applied (NaN if any logit overflows)."""
    ce, overflow = held_out_ce(model, batches, frozen)
    return ce if overflow == 0 else float("nan")


def held_out_ce(model, batches: list[torch.Tensor], frozen: FrozenNorms | None = None) -> tuple[float, float]:
    """(mean next-token CE, share of predictions whose logits are not all finite), with `frozen` norms
    applied. A norm-free network can overflow on outlier tokens (a gated MLP squares an above-average
    residual at every block) and NaN then spreads to later positions through attention. Such a
    prediction is charged log(d_vocab) nats, the uniform predictor's CE (a prediction without usable
    logits is worth no more than a guess), so the CE is finite even when everything overflows; the
    share says how much of the text that hit."""
    total, n, bad = 0.0, 0, 0
    with torch.no_grad(), (frozen or FrozenNorms()).applied(model):
        for batch in batches:
            logits = model(batch)[:, :-1].float()
            ok = torch.isfinite(logits).all(-1)                       # [batch pos-1]
            ce = torch.nn.functional.cross_entropy(logits[ok], batch[:, 1:][ok], reduction="sum")
            total += float(ce) if bool(ok.any()) else 0.0
            n += int(ok.sum())
            bad += int((~ok).sum())
    total += bad * math.log(model.cfg.d_vocab)
    return total / max(n + bad, 1), bad / max(n + bad, 1)


def _fine_tune(model, batches, cfg: NormRemovalConfig, schedule: dict[int, list[list[str]]] | None,
               frozen: FrozenNorms, desc: str) -> list[float]:
    """Train all weights for cfg.steps; at step k freeze the groups of norms schedule[k] (if given), each
    group measured with the ones before it frozen (freeze_in_order).

    Backtracking: a model without norms can be driven to overflow by one step (a gated MLP squares
    the residual at every block, so a small gain in its weights compounds over depth). When a step's
    loss is not finite, the last update is undone, the learning rate halved, the norms frozen at this
    step re-measured on the restored weights, and the loss taken again; a step still not finite is
    skipped. After the last step the final update is checked the same way on the next batch. Cost: one
    copy of the weights per step, and a forward per undone step.
    """
    params = [p for p in model.hf_model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    calib = batches[:cfg.calibration_batches]
    before = [torch.empty_like(p) for p in params]      # the weights before the last update
    updated = False

    def loss_on(batch: torch.Tensor) -> torch.Tensor:
        with frozen.applied(model):
            logits = model(batch)[:, :-1].float()
        return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), batch[:, 1:].reshape(-1))

    def undo(groups: list[list[str]]) -> None:
        with torch.no_grad():
            for p, b in zip(params, before, strict=True):
                p.copy_(b)
        for param_group in opt.param_groups:
            param_group["lr"] *= 0.5
        for site in (site for group in groups for site in group):   # measured on the undone weights
            del frozen.scales[site]
        freeze_in_order(model, groups, calib, frozen)

    losses = []
    for step in progress(range(cfg.steps), desc=desc):
        groups = (schedule or {}).get(step, [])
        freeze_in_order(model, groups, calib, frozen)
        batch = batches[step % len(batches)]
        loss = loss_on(batch)
        if not torch.isfinite(loss) and updated:
            undo(groups)
            updated = False
            loss = loss_on(batch)
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if not torch.isfinite(loss):
            continue  # an overflowing batch even before the last update: no step on NaN
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
        if torch.isfinite(grad_norm):
            with torch.no_grad():
                for p, b in zip(params, before, strict=True):
                    b.copy_(p)
            opt.step()
            updated = True
    opt.zero_grad(set_to_none=True)  # leave no .grad behind on the caller's model
    if updated:
        with torch.no_grad():
            if not torch.isfinite(loss_on(batches[cfg.steps % len(batches)])):
                undo([])
    return losses


@dataclasses.dataclass
class FreezeCost:
    """Held-out CE (nats) of the model as given and with every norm frozen at once, before any
    fine-tuning; overflow: the share of held-out predictions whose logits were not finite, by model
    ("original", "frozen_untrained")."""

    ce_original: float
    ce_frozen_untrained: float
    overflow: dict[str, float]


def freeze_cost(model, train_tokens: torch.Tensor | Iterable[torch.Tensor],
                eval_tokens: torch.Tensor | Iterable[torch.Tensor], cfg: NormRemovalConfig | None = None) -> FreezeCost:
    """What freezing every norm costs without fine-tuning (the first half of `remove_norms`'s readings,
    at one calibration pass per group and four held-out passes' cost, no training). The weights are not
    changed."""
    cfg = cfg or NormRemovalConfig()
    train, held_out = _batches(model, train_tokens, eval_tokens)
    return _freeze_cost(model, train, held_out, cfg, freezing_groups(removal_order(model), cfg.groups))


def _batches(model, train_tokens, eval_tokens) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    train = [b.to(model.device) for b in token_batches(train_tokens)]
    held_out = [b.to(model.device) for b in token_batches(eval_tokens)]
    if not train or not held_out:
        raise InputError("norm removal needs training and evaluation tokens")
    return train, held_out


def _freeze_cost(model, train, held_out, cfg: NormRemovalConfig, groups: list[list[str]]) -> FreezeCost:
    overflow = {}
    ce_original, overflow["original"] = held_out_ce(model, held_out)
    all_at_once = FrozenNorms()
    freeze_in_order(model, groups, train[:cfg.calibration_batches], all_at_once)
    ce_frozen_untrained, overflow["frozen_untrained"] = held_out_ce(model, held_out, all_at_once)
    return FreezeCost(ce_original, ce_frozen_untrained, overflow)


def remove_norms(model, train_tokens: torch.Tensor | Iterable[torch.Tensor],
                 eval_tokens: torch.Tensor | Iterable[torch.Tensor], cfg: NormRemovalConfig | None = None,
                 out_dir: str | Path | None = None) -> NormRemovalResult:
    """Fine-tune the norms away and compare with a plain fine-tune; the model is restored afterwards.

    train_tokens / eval_tokens: [n pos] or batches [batch pos]. With `out_dir`, the norm-free model
    is saved there (HF checkpoint + frozen_norms.json; load it with `load_norm_free`).
    """
    cfg = cfg or NormRemovalConfig()
    train, held_out = _batches(model, train_tokens, eval_tokens)
    order = removal_order(model)
    groups = freezing_groups(order, cfg.groups)
    removal_steps = max(1, int(cfg.steps * cfg.removal_fraction))
    schedule: dict[int, list[list[str]]] = {}
    for i, group in enumerate(groups):   # fewer steps than groups: groups sharing a step freeze in turn
        schedule.setdefault(int(i * removal_steps / len(groups)), []).append(group)
    original = {k: v.detach().clone() for k, v in model.hf_model.state_dict().items()}
    torch.manual_seed(cfg.seed)
    try:
        before = _freeze_cost(model, train, held_out, cfg, groups)
        overflow = dict(before.overflow)

        frozen = FrozenNorms()
        losses_free = _fine_tune(model, train, cfg, schedule, frozen, "norm removal")
        freeze_in_order(model, [[site for site in group if site not in frozen.scales] for group in groups
                                if any(site not in frozen.scales for site in group)],
                        train[:cfg.calibration_batches], frozen)   # any the schedule did not reach
        ce_free, overflow["norm_free"] = held_out_ce(model, held_out, frozen)
        checkpoint = str(save_norm_free(model, frozen, out_dir)) if out_dir is not None else None

        model.hf_model.load_state_dict(original)
        losses_control = _fine_tune(model, train, cfg, None, FrozenNorms(), "control fine-tune")
        ce_control, overflow["control"] = held_out_ce(model, held_out)
    finally:
        model.hf_model.load_state_dict(original)
    return NormRemovalResult(
        ce_original=before.ce_original, ce_frozen_untrained=before.ce_frozen_untrained, ce_control=ce_control,
        ce_norm_free=ce_free, steps=cfg.steps, sites=order, scales=frozen.to_dict(),
        losses_norm_free=losses_free, losses_control=losses_control, checkpoint=checkpoint, overflow=overflow,
    )
