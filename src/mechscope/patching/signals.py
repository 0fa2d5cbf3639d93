"""Internal variables in the residual stream (C19): is the IOI name order (ABBA vs BABA) linearly
readable, and does the model pass it on as a position signal or a token signal?

- ``order_probe``: a linear probe (ridge classifier with a shuffled-label control) for the order
  label at every layer's resid_pre (and the final resid_post) and every position. At layer 0
  (embeddings only) no position can know the order, since the names are random: that is the
  built-in control.
- ``position_vs_token``: noising patches of resid_pre at S2 and at END, layer by layer, from two
  counterfactual prompts: ``order`` (A and B swapped: same tokens, S1 moves, the answer stays) and
  ``rename`` (fresh names in the same order: positions stay, tokens change). Effect = fraction of
  the clean logit difference lost. A model that tracks "which position held the subject" breaks
  under the order patch; one that tracks "which token is the subject" breaks under the rename.
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.patching.partial_forward import Site, run_patched
from mechscope.progress import progress
from mechscope.results import Result
from mechscope.tasks.answer import answer_logits_and_cache
from mechscope.tasks.ioi import ioi_task


@dataclasses.dataclass
class OrderProbe(Result):
    """accuracy, control: [n_rows n_pos] held-out accuracy of the probe and of the same probe on
    shuffled labels; row i is resid_pre of block layers[i], and the last row (layer n_layers) the
    final resid_post. layers: every block by default (n_rows = n_layers + 1)."""

    accuracy: torch.Tensor
    control: torch.Tensor
    pos_labels: list[str]
    n_prompts: int
    null_max: list[float] = dataclasses.field(default_factory=list)
    """Per label shuffle: the best held-out accuracy over every cell of layers >= 1 (order_probe's
    null_shuffles), the null distribution of `best(1)`, which also maximises over cells."""
    layers: list[int] = dataclasses.field(default_factory=list)

    def __post_init__(self):
        if not self.layers:
            self.layers = list(range(self.accuracy.shape[0]))

    def row(self, layer: int) -> int:
        """The row of `layer` (n_layers for the final resid_post)."""
        return self.layers.index(layer)

    def best(self, min_layer: int = 1) -> tuple[int, int, float]:
        """(layer, position, accuracy) of the best cell among rows of layer >= min_layer."""
        first = next(i for i, layer in enumerate(self.layers) if layer >= min_layer)
        sub = self.accuracy[first:]
        i = int(sub.argmax())
        return self.layers[first + i // sub.shape[1]], i % sub.shape[1], float(sub.reshape(-1)[i])

    def figure(self):
        import plotly.graph_objects as go

        from mechscope.figures import safe_tokens

        fig = go.Figure(go.Heatmap(z=self.accuracy.tolist(), x=safe_tokens(self.pos_labels, show_whitespace=True),
                                   y=[str(layer) for layer in self.layers], zmin=0.5, zmax=1.0,
                                   colorscale="Viridis", colorbar={"title": "accuracy"}))
        fig.update_layout(title="linear probe for ABBA vs BABA order (held-out accuracy)",
                          xaxis_title="position", yaxis_title="layer (resid_pre; last row: final)")
        return fig


def order_probe(model, n_prompts: int = 128, seed: int = 0, template_ids: list[int] | None = (0,),
                null_shuffles: int = 0, control_shuffles: int = 5, layers: list[int] | None = None) -> OrderProbe:
    """Probe the order at every (layer, position); with null_shuffles > 0, also refit every cell on
    that many label permutations and keep each permutation's best cell (layers >= 1).

    layers: the blocks whose resid_pre is probed (default every block; the final resid_post always).
    Cost: one forward of n_prompts prompts (to the final norm), then (len(layers) + 1) x n_pos x
    (1 + control_shuffles + null_shuffles) ridge fits."""
    import numpy as np

    from mechscope.geometry.probes import probe_accuracy

    task = ioi_task(model, n_prompts=n_prompts, seed=seed, template_ids=list(template_ids) if template_ids else None)
    L = model.cfg.n_layers
    rows = sorted(set(range(L) if layers is None else layers))
    names = [f"blocks.{layer}.hook_resid_pre" for layer in rows] + [f"blocks.{L - 1}.hook_resid_post"]
    _, cache = answer_logits_and_cache(model, task.clean_tokens, task.answer_pos, names)
    labels = task.labels["order"].numpy().astype(bool)
    acc = torch.zeros(len(names), task.n_pos)
    ctl = torch.zeros_like(acc)
    rng = np.random.default_rng(seed + 7919)
    permutations = [rng.permutation(labels) for _ in range(null_shuffles)]
    null = torch.zeros(null_shuffles, len(names), task.n_pos)
    for i, name in enumerate(progress(names, desc="order probes by layer")):
        acts = cache[name].float().cpu().numpy()
        for p in range(task.n_pos):
            score = probe_accuracy(acts[:, p], labels, seed=seed, n_shuffles=control_shuffles)
            acc[i, p], ctl[i, p] = score.accuracy, score.control_accuracy
            for s, permuted in enumerate(permutations):
                null[s, i, p] = probe_accuracy(acts[:, p], permuted, seed=seed, n_shuffles=0).accuracy
    toks = model.to_str_tokens(task.clean_tokens[0])
    above_0 = [i for i, layer in enumerate([*rows, L]) if layer >= 1]
    return OrderProbe(accuracy=acc, control=ctl, pos_labels=[f"{i}:{t}" for i, t in enumerate(toks)],
                      n_prompts=len(task), null_max=null[:, above_0].flatten(1).max(1).values.tolist(),
                      layers=[*rows, L])


@dataclasses.dataclass
class SignalPatching(Result):
    """effect[kind][where]: [n_layers] fraction of the clean logit difference lost when resid_pre at
    that position and layer comes from the `kind` counterfactual ("order" or "rename")."""

    effect: dict[str, dict[str, torch.Tensor]]
    clean_logit_diff: float
    n_prompts: int
    layers: list[int] = dataclasses.field(default_factory=list)   # the layer of each entry (default 0, 1, ...)

    def figure(self):
        import plotly.graph_objects as go

        fig = go.Figure()
        for kind, by_pos in self.effect.items():
            for where, values in by_pos.items():
                fig.add_scatter(x=self.layers or None, y=values.tolist(), mode="lines+markers",
                                name=f"{kind} @ {where}")
        fig.update_layout(title="position signal (order swap) vs token signal (rename)",
                          xaxis_title="layer (resid_pre)", yaxis_title="fraction of logit diff lost")
        return fig


def position_vs_token(model, n_prompts: int = 32, seed: int = 0, template_ids=(0,),
                      layers: list[int] | None = None) -> SignalPatching:
    """Noising patches of resid_pre at S2 and END at `layers` (default every block) from the order-swapped
    and the renamed prompts. Cost: 2 x 2 x len(layers) patched runs per prompt, each from its layer on."""
    tasks = {kind: ioi_task(model, n_prompts=n_prompts, seed=seed, corrupt=kind, template_ids=list(template_ids))
             for kind in ("order", "rename")}
    base_task = tasks["order"]
    n = min(len(t) for t in tasks.values())
    rows = sorted(set(range(model.cfg.n_layers) if layers is None else layers))
    effect: dict[str, dict[str, torch.Tensor]] = {}
    clean_ld = None
    for kind, task in tasks.items():
        task = task.subset(slice(0, n))
        if not torch.equal(task.clean_tokens, base_task.clean_tokens[:n]):
            raise RuntimeError("order and rename counterfactuals were drawn for different clean prompts")
        names = [f"blocks.{layer}.hook_resid_pre" for layer in rows]
        _, cache = answer_logits_and_cache(model, task.corrupt_tokens, task.answer_pos, names)
        effect[kind] = {}
        for where in ("S2", "END"):
            pos = task.positions[where]
            if not bool((pos == pos[0]).all()):
                continue
            sites = [Site(name, pos=int(pos[0])) for name in names]
            scores, base = run_patched(model, task.clean_tokens.to(model.device), {k: cache[k] for k in names},
                                       sites, lambda lg, i, t=task: t.score(lg, i), task.answer_pos)
            clean_ld = base.mean().item()
            effect[kind][where] = (clean_ld - scores.mean(1)) / clean_ld
    return SignalPatching(effect=effect, clean_logit_diff=float(clean_ld), n_prompts=n, layers=rows)
