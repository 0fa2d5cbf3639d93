"""One engine that evaluates any circuit in one forward pass.

Every destination reads its own input plus, for each source upstream of it whose edge is outside
the circuit, (ablated value - current value) of that source:

    x_d' = x_d + sum_{s -> d not in C} (a_s - c_s)

where c_s is the source's output in this very run (so upstream ablations propagate) and a_s its
ablated value (`circuits.sources`). With every edge kept this is the clean run; with none kept
each destination reads sum_s a_s, i.e. the corrupt run under patching. The destinations are the
hook points hook_attn_in, hook_mlp_in and ln_final.hook_in, which change only what one sublayer
reads. Several circuits run in one forward by tiling the prompts: masks [k n_src n_dst] give
k * n_prompts rows. Runs stop at the final norm and unembed only the answer position
(`patching.forward_to_answer`), so large vocabularies cost no [rows pos d_vocab] tensor.

    setup = CircuitSetup.from_task(model, task, ablation="patching")
    per_prompt = evaluate(setup, masks)          # [k n_prompts]
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import torch

from mechscope import distributed as ddp
from mechscope.circuits.graph import Graph
from mechscope.circuits.metric import CircuitMetric, task_metric
from mechscope.circuits.sources import (
    ablated_values,
    as_group,
    destination_hooks,
    group_layer,
    group_list,
    head_outputs,
    in_model_space,
    is_heads,
    source_hook_names,
)
from mechscope.errors import InputError
from mechscope.patching import forward_to_answer


@dataclasses.dataclass
class CircuitSetup:
    """What every circuit method needs: the model, its graph, the prompts, the ablation and the metric.

    clean_tokens, corrupt_tokens: [n pos]; ablated and clean_sources: group lists (`circuits.sources`:
    one [n pos g width] tensor per source hook, heads as z; ablated ones broadcastable); w_o: W_O
    [layer head d_head d_model]; clean_answer_logits: [n d_vocab]. The clean ones come from one clean
    forward, run when first needed; EAP's gradient pass fills them on the way, so EAP costs one
    corrupt forward plus one clean forward and backward.
    """

    model: object
    graph: Graph
    clean_tokens: torch.Tensor
    corrupt_tokens: torch.Tensor
    ablation: str
    ablated: list[torch.Tensor]
    metric: CircuitMetric
    w_o: torch.Tensor
    answer_pos: int
    max_rows: int = 256
    n_prompts_total: int = 0          # over every rank under torchrun (= n_prompts in one process)
    _clean_sources: list[torch.Tensor] | None = None
    _clean_answer_logits: torch.Tensor | None = None

    @classmethod
    def from_task(cls, model, task, *, ablation: str = "patching", metric=None, max_rows: int = 256,
                  qkv: bool = False) -> CircuitSetup:
        """`task`: a mechscope Task; `metric`: None (the task's), a metric name or a function; `qkv`:
        attention destinations per head and q / k / v input (`Graph`), else one per layer.

        Under torchrun each rank takes the disjoint share task[rank::world_size] of the prompts; every
        score and mean is a sum over prompts all-reduced across ranks, so results match one process.
        """
        if ddp.is_distributed():
            task = task.subset(slice(ddp.rank(), None, ddp.world_size()))
        return cls.from_tokens(model, task.clean_tokens, task.corrupt_tokens, task=task, ablation=ablation,
                               metric=metric, answer_pos=task.answer_pos, max_rows=max_rows, qkv=qkv)

    @classmethod
    def from_tokens(cls, model, clean_tokens, corrupt_tokens, *, task=None, ablation="patching", metric=None,
                    answer_pos: int = -1, max_rows: int = 256, qkv: bool = False) -> CircuitSetup:
        clean, corrupt = torch.as_tensor(clean_tokens), torch.as_tensor(corrupt_tokens)
        if clean.ndim != 2 or clean.shape != corrupt.shape:
            raise InputError(f"clean tokens {tuple(clean.shape)} and corrupt tokens {tuple(corrupt.shape)} must "
                             "both be [n_prompts, n_pos] with the same shape: pair each clean prompt with a "
                             "corrupt prompt of the same token length")
        if task is None and not callable(metric):
            raise InputError("without a task, pass metric= as a function (answer_logits, prompt_index) -> [rows]")
        clean, corrupt = clean.to(model.device), corrupt.to(model.device)
        setup = cls(model=model, graph=Graph.from_model(model, qkv=qkv), clean_tokens=clean, corrupt_tokens=corrupt,
                    ablation=ablation, ablated=ablated_values(model, corrupt, ablation), metric=None,
                    w_o=model.W_O.detach(),
                    answer_pos=answer_pos, max_rows=max_rows,
                    n_prompts_total=int(ddp.all_reduce_sum(torch.tensor(clean.shape[0], device=model.device))))
        if task is None:
            setup.metric = CircuitMetric(metric, getattr(metric, "__name__", "custom"))
        elif (metric or task.metric) == "kl":   # the reference distribution is needed up front
            setup.metric = task_metric(task, metric, clean_answer_logits=setup.clean_answer_logits)
        else:
            setup.metric = task_metric(task, metric)
        return setup

    def _clean_run(self) -> None:
        logits, acts = forward_to_answer(self.model, self.clean_tokens, source_hook_names(self.graph.n_layers),
                                         self.answer_pos, grad=False)
        self.remember_clean(acts, logits)

    def remember_clean(self, sources: dict[str, torch.Tensor], answer_logits: torch.Tensor) -> None:
        """Keep a clean run's source activations {hook name: act} and answer logits [n d_vocab]."""
        self._clean_sources = group_list({n: a.detach() for n, a in sources.items()}, self.graph.n_layers)
        self._clean_answer_logits = answer_logits.detach().float()

    @property
    def clean_sources(self) -> list[torch.Tensor]:
        if self._clean_sources is None:
            self._clean_run()
        return self._clean_sources

    def in_model_space(self, groups: list[torch.Tensor]) -> torch.Tensor:
        """A group list as every source's output [n pos n_src d_model] (materialises head outputs)."""
        return in_model_space(groups, self.w_o)

    @property
    def clean_answer_logits(self) -> torch.Tensor:
        if self._clean_answer_logits is None:
            self._clean_run()
        return self._clean_answer_logits

    def swapped(self) -> CircuitSetup:
        """The same graph and metric with clean and corrupt prompts exchanged (patching only): the
        engine's base run is then the corrupt one and an edge outside the circuit carries its clean
        value, so exact noising on the swapped setup is exact denoising on this one. The metric still
        scores the clean prompts' answers."""
        if self.ablation != "patching":
            raise InputError(f"swapping clean and corrupt needs ablation='patching' (the ablated values are a "
                             f"corrupt run's); this setup ablates with {self.ablation!r}")
        return dataclasses.replace(self, clean_tokens=self.corrupt_tokens, corrupt_tokens=self.clean_tokens,
                                   ablated=self.clean_sources, _clean_sources=self.ablated,
                                   _clean_answer_logits=None)

    @property
    def n_prompts(self) -> int:
        return self.clean_tokens.shape[0]

    def prompt_index(self, k: int) -> torch.Tensor:
        return torch.arange(self.n_prompts).repeat(k)


def engine_hooks(setup: CircuitSetup, ablate: torch.Tensor) -> dict:
    """Forward hooks that run `ablate` [k n_src n_dst] (1 = edge outside the circuit) on k tiled copies.

    A source group's difference (ablated - current) is formed only if some destination ablates one
    of its sources; a layer's heads are differenced as z and projected through W_O once. Each
    destination adds the sum over its ablated sources, or, when it keeps fewer source groups than it
    ablates (a small circuit), the running sum of every upstream difference minus its kept ones:
    the same total from fewer products (`_destination_plan`).
    """
    k, n = ablate.shape[0], setup.n_prompts
    weights = ablate.to(setup.model.dtype).to(setup.model.device)
    deltas: dict[int, torch.Tensor] = {}
    sizes = [1] + [setup.graph.n_heads, 1] * setup.graph.n_layers
    starts = [sum(sizes[:i]) for i in range(len(sizes))]
    recorded = [bool(weights[:, s:s + z].any()) for s, z in zip(starts, sizes, strict=True)]
    names = source_hook_names(setup.graph.n_layers)
    spans = _destination_spans(setup.graph)
    plans = [_destination_plan(setup.graph.allowed, weights, starts, sizes, recorded, first, count)
             for _, first, count in spans]
    keep_running = any(plan.running for plan in plans)
    running: dict[str, torch.Tensor | int] = {}       # "sum": [k npd] over the groups recorded so far
    first_recorded = recorded.index(True) if any(recorded) else None
    fwd: dict = {}

    def record(i: int):
        start, size = starts[i], sizes[i]

        def fn(act, hook):
            if i == first_recorded:                   # a new forward
                deltas.clear()
                running.clear()
            group = as_group(hook.name, act)
            current = group.reshape(k, n, *group.shape[1:])                       # [k n pos g width]
            delta = setup.ablated[i].unsqueeze(0) - current
            if is_heads(hook.name):
                delta = head_outputs(delta, setup.w_o[group_layer(hook.name)])    # [k n pos g d_model]
            # stored as [k g (n pos d_model)]: every destination then weights the group with one bmm
            # (an einsum over the [k n pos g d] layout copied the whole tensor per destination, 20x slower)
            deltas[start] = delta.movedim(3, 1).reshape(k, delta.shape[3], -1)
            if keep_running:
                summed = deltas[start].sum(1)
                running["sum"] = summed if "sum" not in running else running["sum"] + summed
                running["upto"] = start + size
        return fn

    def patch(count: int, plan: DestinationPlan):
        """One destination hook of `count` destinations: x is [k*n pos d_model] (count 1) or
        [k*n pos count d_model] (the split q/k/v inputs, one destination per head)."""

        def fn(x, hook):
            if plan.running and running.get("upto", 0) <= plan.upstream:
                total = running["sum"].unsqueeze(1).expand(k, count, -1)          # [k count npd]
                for start, w in plan.kept:                                        # minus the kept groups
                    total = total - torch.bmm(w, deltas[start])
            else:
                if not plan.ablated:
                    return None
                total = 0
                for start, w in plan.ablated:                                     # [k c g] @ [k g npd]
                    total = total + torch.bmm(w, deltas[start])
            pos, d_model = x.shape[1], x.shape[-1]
            total = total.reshape(k, count, n, pos, d_model).permute(0, 2, 3, 1, 4)   # [k n pos count d]
            return x + total.reshape(x.shape)
        return fn

    for i, name in enumerate(names):
        if recorded[i]:
            fwd[name] = record(i)
    for (name, _, count), plan in zip(spans, plans, strict=True):
        fwd[name] = patch(count, plan)
    return fwd


class DestinationPlan(NamedTuple):
    """How one destination hook sums its differences (`_destination_plan`); groups are (start, weights
    [k count g])."""

    running: bool                                   # the running sum minus `kept`, else the sum of `ablated`
    upstream: int                                   # its sources are the first `upstream` of the source order
    kept: list[tuple[int, torch.Tensor]]
    ablated: list[tuple[int, torch.Tensor]]


def _destination_spans(graph: Graph) -> list[tuple[str, int, int]]:
    """(hook name, first destination, count) of each destination hook, in hook order."""
    spans, first = [], 0
    for name, count in destination_hooks(graph):
        spans.append((name, first, count))
        first += count
    return spans


def _destination_plan(allowed: torch.Tensor, weights: torch.Tensor, starts: list[int], sizes: list[int],
                      recorded: list[bool], first: int, count: int) -> DestinationPlan:
    """Its sources are a prefix of the source order (`Graph.allowed`). Summing the ablated groups costs one
    bmm per group with an ablated edge; the running sum of every recorded difference minus the kept groups
    costs one per recorded group with a kept edge (a group no destination ablates is never recorded: it is
    in neither sum); the cheaper one is planned. When a source beyond the prefix has been recorded by the
    time the hook runs (parallel attention+MLP blocks), the running sum is not the prefix's and the hook
    falls back to the ablated groups.
    """
    w = weights[:, :, first:first + count].transpose(1, 2)                        # [k count n_src]
    upstream = int(allowed[:, first].sum())
    kept = allowed[:upstream, first:first + count].T.to(w) - w[:, :, :upstream]
    ablated, keeps = [], []
    for start, size, seen in zip(starts, sizes, recorded, strict=True):
        if bool(w[:, :, start:start + size].any()):
            ablated.append((start, w[:, :, start:start + size]))
        if seen and start < upstream and bool(kept[:, :, start:start + size].any()):
            keeps.append((start, kept[:, :, start:start + size]))
    return DestinationPlan(prefer_running_sum(len(keeps), len(ablated)), upstream, keeps, ablated)


def prefer_running_sum(n_kept: int, n_ablated: int) -> bool:
    """Products per destination: the running sum costs one add and one bmm per kept group."""
    return n_kept + 1 < n_ablated


def _as_masks(setup: CircuitSetup, masks: torch.Tensor) -> torch.Tensor:
    masks = torch.as_tensor(masks).bool().cpu()
    if masks.ndim == 2:
        masks = masks[None]
    g = setup.graph
    if masks.shape[1:] != (g.n_src, g.n_dst):
        raise InputError(f"circuit masks must be [k, {g.n_src}, {g.n_dst}] (sources x destinations); got "
                         f"{tuple(masks.shape)}. Build them with Graph.mask_from_edges / mask_from_nodes")
    return masks


def answer_logits(setup: CircuitSetup, masks: torch.Tensor) -> torch.Tensor:
    """Answer-position logits with each circuit of `masks` [k n_src n_dst]: [k n d_vocab] (no grad). A circuit
    asked for more than once (a curve's 0 and 100% points are its empty and full circuits) runs once, and
    one that keeps every edge is the clean run the setup already made."""
    masks = _as_masks(setup, masks)
    distinct, inverse = torch.unique(masks.flatten(1), dim=0, return_inverse=True)
    if distinct.shape[0] < masks.shape[0]:
        return answer_logits(setup, distinct.view(-1, *masks.shape[1:]))[inverse]
    ablate = setup.graph.allowed[None] & ~masks
    clean = ~ablate.flatten(1).any(-1)
    out = setup.clean_answer_logits[None].repeat(masks.shape[0], 1, 1)
    run = (~clean).nonzero().squeeze(-1).tolist()
    per_chunk = max(1, setup.max_rows // setup.n_prompts)
    model = setup.model
    for i in range(0, len(run), per_chunk):
        rows = run[i:i + per_chunk]
        tokens = setup.clean_tokens.repeat(len(rows), 1)
        with model.hooks(fwd=engine_hooks(setup, ablate[rows])):
            logits, _ = forward_to_answer(model, tokens, [], setup.answer_pos, grad=False)
        out[rows] = logits.float().view(len(rows), setup.n_prompts, -1)
    return out


def prompt_mean(setup: CircuitSetup, values: torch.Tensor) -> torch.Tensor:
    """[k n] per-prompt values -> [k] means over every prompt (all ranks under torchrun)."""
    return ddp.all_reduce_sum(values.sum(-1)) / setup.n_prompts_total


def mean_metric(setup: CircuitSetup, masks: torch.Tensor) -> torch.Tensor:
    """The mean metric of each circuit: masks [k n_src n_dst] -> [k]."""
    return prompt_mean(setup, evaluate(setup, masks))


def evaluate(setup: CircuitSetup, masks: torch.Tensor) -> torch.Tensor:
    """The metric of each circuit, per prompt: masks [k n_src n_dst] (or one [n_src n_dst]) -> [k n]."""
    logits = answer_logits(setup, masks)
    k = logits.shape[0]
    values = setup.metric(logits.reshape(k * setup.n_prompts, -1), setup.prompt_index(k))
    return values.view(k, setup.n_prompts)
