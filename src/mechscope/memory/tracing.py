"""Causal tracing (Meng et al. 2022, "Locating and Editing Factual Associations in GPT").

1. Clean run: cache every layer's residual (resid_post), MLP output and attention output.
2. Corrupt run: add Gaussian noise to the token embeddings of the subject (default 3x the standard
   deviation of the embedding matrix's entries; a given noise tensor is used as is), `n_samples`
   noise draws.
3. Restored runs: the corrupt run with one clean state put back at (layer, position); for the MLP
   and attention kinds, a window of `window` layers centred on the layer is restored together.
4. Indirect effect = P_restored(answer) - P_corrupt(answer), probabilities averaged over the noise
   draws (as the reference code does).

Every restoration of a prompt, for every kind, rides in one batched forward (rows = cells x noise
draws, chunked by `max_rows`); the reference runs one forward per cell. A cell's rows join the
forward at the first block it restores (below it they equal the corrupt rows), which saves about
half the block compute of a full grid. Positions before the
subject are not run: their corrupt state equals the clean one, so restoring them changes nothing
and their effect is 0 by construction. Nor are cells that restore only the last layer at a position
before the last: no later layer reads them, so the answer's probability is the corrupt one exactly
(a quarter of the cells of a 4-layer model).
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope.errors import BatchGrowthError, InputError
from mechscope.memory.prompts import Fact, check_prompt, subject_span, target_id
from mechscope.model.axes import RowPositions, write
from mechscope.model.hook_points import GrowBatch
from mechscope.model.interventions import add_vector
from mechscope.patching import forward_to_answer
from mechscope.patching.partial_forward import grow_rows
from mechscope.results import Result

KINDS = {"resid": "hook_resid_post", "mlp": "hook_mlp_out", "attn": "hook_attn_out"}


@dataclasses.dataclass
class TraceConfig:
    kinds: tuple[str, ...] = ("resid", "mlp", "attn")   # which states to restore
    window: int | None = None    # layers restored together for mlp / attn (clipped at the ends); None:
                                 # 10 (the reference's) on models of 50+ layers, n_layers // 5 (at least 1) below
    n_samples: int = 10          # noise draws per prompt
    noise_scale: float = 3.0     # noise std = noise_scale * std(W_E); ignored when `noise` is given
    seed: int = 1                # seed of the noise draws
    max_rows: int = 2048         # rows per batched forward


@dataclasses.dataclass
class CausalTrace(Result):
    """One prompt's trace. scores[kind]: [n_layers n_pos] P(answer) with that state restored."""

    prompt: str
    tokens: list[str]
    subject_range: tuple[int, int]          # [first, last + 1) token indices of the subject
    answer: str
    p_clean: float
    p_corrupt: float
    scores: dict[str, torch.Tensor]
    kinds: tuple[str, ...]
    window: int

    def indirect_effect(self, kind: str) -> torch.Tensor:
        """[n_layers n_pos] P_restored - P_corrupt."""
        return self.scores[kind] - self.p_corrupt

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["indirect_effect"] = {k: self.indirect_effect(k).tolist() for k in self.kinds}
        return out

    def figure(self):
        from plotly.subplots import make_subplots

        titles = [f"{k} (window {self.window})" if k != "resid" else "residual" for k in self.kinds]
        fig = make_subplots(rows=1, cols=len(self.kinds), subplot_titles=titles, shared_yaxes=True)
        labels = [f"{i}:{t}" + ("*" if self.subject_range[0] <= i < self.subject_range[1] else "")
                  for i, t in enumerate(self.tokens)]
        for col, kind in enumerate(self.kinds, start=1):
            ie = self.indirect_effect(kind)
            fig.add_heatmap(z=ie.T.tolist(), y=labels, x=list(range(ie.shape[0])), coloraxis="coloraxis",
                            row=1, col=col)
            fig.update_xaxes(title_text="layer", row=1, col=col)
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(title=f"causal trace: P({self.answer!r}) clean {self.p_clean:.3f}, corrupt "
                                f"{self.p_corrupt:.3f} (* = subject token)", coloraxis={"colorscale": "Purples"})
        return fig


def embedding_noise_std(model, scale: float = 3.0) -> float:
    return scale * float(model.W_E.float().std())


def draw_noise(model, n_subject: int, config: TraceConfig) -> torch.Tensor:
    """[n_samples n_subject d_model] Gaussian noise, seeded, scaled to `noise_scale` x std(W_E)."""
    g = torch.Generator().manual_seed(config.seed)
    noise = torch.randn(config.n_samples, n_subject, model.cfg.d_model, generator=g)
    return noise * embedding_noise_std(model, config.noise_scale)


def _cells(model, kind: str, n_pos: int, start: int, window: int) -> list[tuple[int, int, list[int]]]:
    """(layer, position, layers restored) for every cell of one kind from the subject on."""
    n = model.cfg.n_layers
    out = []
    for layer in range(n):
        layers = [layer] if kind == "resid" else list(range(max(0, layer - window // 2),
                                                             min(n, layer - (-window // 2))))
        out.extend((layer, pos, layers) for pos in range(start, n_pos))
    return out


def run_restorations(model, tokens: torch.Tensor, span: tuple[int, int], noise: torch.Tensor,
                     restorations: list[list[tuple[str, int, int]]], clean_cache: dict[str, torch.Tensor],
                     answer: int, max_rows: int = 2048) -> torch.Tensor:
    """P(answer) at the last position, averaged over noise draws, for each restoration set.

    tokens: [pos]; noise: [n_samples n_subject d_model]; restorations: per row group, a list of
    (hook name, layer, position) to restore from `clean_cache` (name -> [1 pos d]). An empty list
    is the corrupt run. Returns [len(restorations)].

    Each forward starts from the corrupt rows (one per noise draw, `add_vector` on the subject's
    embeddings); a group's rows are copied from them at the input of the first block it restores
    (`patching.partial_forward.grow_rows`: below it they equal the corrupt rows), so a group costs
    only the blocks from there on; each group's cells are then restored in its own rows. Where a
    block cannot take extra rows (BatchGrowthError) every row starts at the input: same numbers.
    """
    try:
        return _restored_probs(model, tokens, span, noise, restorations, clean_cache, answer, max_rows, grow=True)
    except BatchGrowthError:
        return _restored_probs(model, tokens, span, noise, restorations, clean_cache, answer, max_rows, grow=False)


def _restored_probs(model, tokens, span, noise, restorations, clean_cache, answer, max_rows, *, grow: bool
                    ) -> torch.Tensor:
    s = noise.shape[0]
    per_chunk = max(1, max_rows // s - 1)
    out = torch.empty(len(restorations))
    todo = [g for g, cells in enumerate(restorations) if cells]
    # groups sorted by the block where their rows are created (-1: the input), so rows are only appended
    start_of = {g: min(lay for _, lay, _ in restorations[g]) if grow else -1 for g in todo}
    todo.sort(key=start_of.get)
    for c0 in range(0, max(len(todo), 1), per_chunk):
        chunk = todo[c0: c0 + per_chunk]
        at_input = sum(start_of[g] == -1 for g in chunk)
        where: dict[str, tuple[list[int], list[int]]] = {}
        for block, g in enumerate(chunk, start=1):     # block 0: the corrupt rows
            for name, _, pos in restorations[g]:
                r, p = where.setdefault(name, ([], []))
                r.extend(range(block * s, (block + 1) * s))
                p.extend([pos] * s)
        fwd: dict[str, list] = {"hook_embed": [add_vector(noise.to(model.device, model.dtype).repeat(1 + at_input, 1, 1),
                                                          positions=slice(*span))]}
        created = 1 + at_input
        for layer in range(model.cfg.n_layers):
            k = sum(start_of[g] == layer for g in chunk)
            if k:
                fwd[f"blocks.{layer}.hook_resid_pre"] = [GrowBatch(grow_rows(s, created, k, None))]
                created += k
        for name, (r, p) in where.items():
            fwd.setdefault(name, []).append(restore_from(clean_cache[name], RowPositions(p, rows=r)))
        with model.hooks(fwd=fwd):      # the last position's logits only: no [rows pos d_vocab] head
            logits = forward_to_answer(model, tokens[None].expand(s * (1 + at_input), -1), [], -1, grad=False)[0]
        probs = logits.float().softmax(-1)[:, answer].view(1 + len(chunk), s).mean(1)
        out[chunk] = probs[1:]
        out[[g for g, cells in enumerate(restorations) if not cells]] = probs[0]
    return out


def restore_from(clean: torch.Tensor, positions: RowPositions):
    """A hook putting the clean run's state ([1 pos d], broadcast over rows) back at each (row, position)
    pair of `positions`; unlike `patch_from` the batch may have grown since the clean run."""
    def fn(act, hook):
        return write(act.clone(), clean, hook, positions=positions)
    return fn


def causal_trace(model, fact: Fact, config: TraceConfig | None = None, noise: torch.Tensor | None = None
                 ) -> CausalTrace:
    """Trace one fact. noise: [n_samples n_subject_tokens d_model] to reuse a fixed draw."""
    config = config or TraceConfig()
    bad = [k for k in config.kinds if k not in KINDS]
    if bad:
        raise InputError(f"unknown trace kind(s) {bad}: use {', '.join(KINDS)}")
    window = config.window or min(10, max(1, model.cfg.n_layers // 5))
    ids, first, end = subject_span(model, fact.prompt, fact.subject)
    check_prompt(model, ids)
    answer = target_id(model, fact.target)
    if noise is None:
        noise = draw_noise(model, end - first, config)
    if noise.dim() != 3 or noise.shape[1:] != (end - first, model.cfg.d_model):
        raise InputError(f"noise must be [n_samples {end - first} {model.cfg.d_model}] for this subject, got "
                         f"{tuple(noise.shape)}")
    tokens = torch.tensor(ids, device=model.device)
    names = [f"blocks.{layer}.{KINDS[k]}" for k in config.kinds for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(tokens[None], names=names)
    clean = {n: cache[n] for n in names}
    p_clean = float(logits[0, -1].float().softmax(-1)[answer])
    groups: list[list[tuple[str, int, int]]] = [[]]
    index: list[tuple[str, int, int]] = []
    last_layer, last_pos = model.cfg.n_layers - 1, len(ids) - 1
    for kind in config.kinds:
        for layer, pos, layers in _cells(model, kind, len(ids), first, window):
            if pos != last_pos and all(lay == last_layer for lay in layers):
                continue      # read by no later position's layer: P(answer) is the corrupt one, exactly
            groups.append([(f"blocks.{lay}.{KINDS[kind]}", lay, pos) for lay in layers])
            index.append((kind, layer, pos))
    probs = run_restorations(model, tokens, (first, end), noise, groups, clean, answer, config.max_rows)
    p_corrupt = float(probs[0])
    scores = {k: torch.full((model.cfg.n_layers, len(ids)), p_corrupt) for k in config.kinds}
    for (kind, layer, pos), p in zip(index, probs[1:].tolist(), strict=True):
        scores[kind][layer, pos] = p
    return CausalTrace(prompt=fact.prompt, tokens=model.to_str_tokens(tokens), subject_range=(first, end),
                       answer=fact.target, p_clean=p_clean, p_corrupt=p_corrupt, scores=scores,
                       kinds=tuple(config.kinds), window=window)
