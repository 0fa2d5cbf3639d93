"""Layer robustness (Lad et al. 2024): delete one block, or swap two adjacent blocks, and measure damage.

Edits are made on the HookedModel's `model.layers` ModuleList, inside a context manager that always
puts the original blocks back. Deleting block L means the residual stream skips it (resid_post =
resid_pre); swapping L and L+1 runs them in the other order. Per edit we report the top-1
agreement with the unedited model and the next-token cross-entropy.

An edit at block L leaves blocks 0..L-1 as they are, so each edited run starts from the unedited
run's residual stream entering block L (cached once) and runs only the blocks from L on.

Cost model: one unedited forward, then per edit (n_layers - L) blocks and the unembedding of every
position, with |layers| deletions and, with `swaps`, |layers| - 1 swaps (every block deleted and
every adjacent pair swapped, by default): quadratic in depth when every layer is edited; pass
`layers` (e.g. a fixed number spread over the depth) to keep it linear.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager

import torch

from mechscope.data.text import token_batches
from mechscope.errors import InputError
from mechscope.progress import progress
from mechscope.results import Result


@contextmanager
def reordered_layers(model, order: Sequence[int]) -> Iterator[None]:
    """Run the blocks in `order` (indices into the original blocks; omit one to delete it).

    The ModuleList's contents are replaced for the duration of the block and restored on exit,
    exceptions included. Hooks by layer name are not meaningful inside (they follow the modules).
    """
    layers = model.layers
    original = list(layers)
    if any(not 0 <= i < len(original) for i in order):
        raise InputError(f"layer order {list(order)} refers to blocks outside 0..{len(original) - 1}")
    try:
        _set_contents(layers, [original[i] for i in order])
        yield
    finally:
        _set_contents(layers, original)


def _set_contents(layers: torch.nn.ModuleList, modules: list[torch.nn.Module]) -> None:
    layers._modules.clear()
    for i, module in enumerate(modules):
        layers._modules[str(i)] = module


@dataclasses.dataclass
class LayerRobustnessResult(Result):
    """Damage per edit, over n_tokens next-token predictions.

    deleted_agreement[i] / deleted_ce[i]: with block layers[i] removed.
    swapped_agreement[i] / swapped_ce[i]: with blocks swapped[i] and swapped[i] + 1 exchanged.
    base_ce: the unedited model's cross-entropy.
    layers / swapped_layers: the blocks edited (every block, and every block but the last, by default).
    """

    n_layers: int
    base_ce: float
    deleted_agreement: list[float]
    deleted_ce: list[float]
    swapped_agreement: list[float]
    swapped_ce: list[float]
    n_tokens: int
    layers: list[int] = dataclasses.field(default_factory=list)
    swapped_layers: list[int] = dataclasses.field(default_factory=list)

    def figure(self):
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("top-1 agreement with the original",
                                                            "cross-entropy (nats)"))
        deleted_x = [str(i) for i in (self.layers or range(self.n_layers))]
        swapped_x = [f"{i}↔{i + 1}" for i in (self.swapped_layers or range(self.n_layers - 1))]
        fig.add_trace(go.Bar(x=deleted_x, y=self.deleted_agreement, name="delete block"), 1, 1)
        fig.add_trace(go.Bar(x=swapped_x, y=self.swapped_agreement, name="swap blocks"), 1, 1)
        fig.add_trace(go.Bar(x=deleted_x, y=self.deleted_ce, name="delete block (CE)", showlegend=False,
                             marker_color="#636efa"), 1, 2)
        fig.add_trace(go.Bar(x=swapped_x, y=self.swapped_ce, name="swap blocks (CE)", showlegend=False,
                             marker_color="#ef553b"), 1, 2)
        fig.add_hline(y=self.base_ce, line_dash="dot", row=1, col=2, annotation_text="original")
        fig.update_yaxes(range=[0, 1], row=1, col=1)
        fig.update_layout(title="layer robustness: delete one block / swap adjacent blocks", barmode="group")
        return fig


def _score(logits: torch.Tensor, batch: torch.Tensor, top: torch.Tensor) -> tuple[float, float]:
    """(agreeing predictions, summed next-token CE) of logits [b pos d_vocab] on `batch` against `top`."""
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return float((logp.argmax(-1) == top).sum()), float(-logp.gather(-1, batch[:, 1:, None]).sum())


def edited_logits(model, batch: torch.Tensor, order: list[int], resid: torch.Tensor) -> torch.Tensor:
    """Logits [b pos d_vocab] of the blocks `order` (original indices) run on `resid` [b pos d_model],
    the residual stream entering the first of them (the embedding's blocks before it are skipped)."""
    if not order:
        return model.unembed(model.ln_final(resid))

    def inject(_act, _hook):
        return resid

    # hooks attach to the block modules by their original index, so they follow the block into `order`
    with model.hooks(fwd={f"blocks.{order[0]}.hook_resid_pre": inject}), reordered_layers(model, order):
        return model(batch)


def layer_robustness(model, tokens: torch.Tensor | Iterable[torch.Tensor], batch_size: int = 8,
                     layers: Sequence[int] | None = None, swaps: bool = True) -> LayerRobustnessResult:
    """Delete each block in `layers` (default: all) and, with `swaps`, swap each with its successor;
    tokens [n pos] or batches [batch pos]."""
    batches = [b.to(model.device) for b in token_batches(tokens, batch_size)]
    if not batches:
        raise InputError("layer robustness needs at least one batch of tokens")
    n = model.cfg.n_layers
    layers = list(range(n)) if layers is None else sorted({int(layer) for layer in layers})
    if not layers or layers[0] < 0 or layers[-1] >= n:
        raise InputError(f"layers to edit must lie in 0..{n - 1}, got {layers}")
    swapped_layers = [layer for layer in layers if layer < n - 1] if swaps else []
    edits = [("delete", layer) for layer in layers] + [("swap", layer) for layer in swapped_layers]
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    totals = {edit: [0.0, 0.0] for edit in [("base", -1), *edits]}
    n_tokens = 0
    bar = progress(total=len(batches) * len(totals), desc=f"layer robustness: {len(edits)} edits")
    with torch.no_grad(), bar:
        for batch in batches:
            logits, cache = model.run_with_cache(batch, names=names)
            top = logits[:, :-1].argmax(-1)
            n_tokens += top.numel()
            for edit in totals:
                kind, layer = edit
                if kind == "base":
                    agree, ce = _score(logits, batch, top)
                else:
                    rest = list(range(layer + 1, n))
                    order = rest if kind == "delete" else [layer + 1, layer, *rest[1:]]
                    agree, ce = _score(edited_logits(model, batch, order, cache[f"blocks.{layer}.hook_resid_pre"]),
                                       batch, top)
                totals[edit][0] += agree
                totals[edit][1] += ce
                bar.update(1)
    mean = {edit: (a / n_tokens, c / n_tokens) for edit, (a, c) in totals.items()}
    deleted = [mean[("delete", layer)] for layer in layers]
    swapped = [mean[("swap", layer)] for layer in swapped_layers]
    base_ce = mean[("base", -1)][1]
    return LayerRobustnessResult(
        n_layers=n, base_ce=base_ce,
        deleted_agreement=[a for a, _ in deleted], deleted_ce=[c for _, c in deleted],
        swapped_agreement=[a for a, _ in swapped], swapped_ce=[c for _, c in swapped],
        n_tokens=n_tokens, layers=layers, swapped_layers=swapped_layers,
    )
