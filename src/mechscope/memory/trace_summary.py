"""Causal traces of many facts, averaged by token role (the reference's summary figure).

Prompts differ in length and subject length, so per-fact grids are folded onto six token roles
before averaging: first subject token, middle subject tokens, last subject token, first token after
the subject, further tokens, last token (when the last token is also the first after the subject it
counts as the last token).
"""

from __future__ import annotations

import dataclasses

import torch

from mechscope import distributed as ddp
from mechscope.errors import InputError
from mechscope.memory.prompts import Fact
from mechscope.memory.tracing import CausalTrace, TraceConfig, causal_trace
from mechscope.progress import progress
from mechscope.results import Result

ROLES = ("first subject", "middle subject", "last subject", "first after", "further", "last")


def token_roles(n_pos: int, first: int, end: int) -> list[int | None]:
    """The role index of each position (None before the subject)."""
    roles: list[int | None] = []
    for pos in range(n_pos):
        if pos < first:
            roles.append(None)
        elif pos == n_pos - 1:
            roles.append(5)
        elif pos == end - 1:
            roles.append(2)
        elif pos == first:
            roles.append(0)
        elif pos < end:
            roles.append(1)
        else:
            roles.append(3 if pos == end else 4)
    return roles


@dataclasses.dataclass
class TraceSummary(Result):
    """Mean indirect effect per (layer, token role): effects[kind] [n_layers 6] (NaN where no fact has
    that role). p_clean / p_corrupt: mean over facts; seconds: wall time of the traces (this process)."""

    _json_exclude = ("traces",)

    n_facts: int
    p_clean: float
    p_corrupt: float
    effects: dict[str, torch.Tensor]
    roles: tuple[str, ...]
    seconds: float
    traces: list[CausalTrace]

    def peak(self, kind: str, role: str = "last subject") -> tuple[int, float]:
        """(layer, mean indirect effect) where `kind` at `role` peaks."""
        column = self.effects[kind][:, self.roles.index(role)]
        layer = int(torch.nan_to_num(column, nan=-float("inf")).argmax())
        return layer, float(column[layer])

    def figure(self):
        from plotly.subplots import make_subplots

        kinds = list(self.effects)
        fig = make_subplots(rows=1, cols=len(kinds), subplot_titles=kinds, shared_yaxes=True)
        for col, kind in enumerate(kinds, start=1):
            fig.add_heatmap(z=self.effects[kind].T.tolist(), y=list(self.roles), coloraxis="coloraxis",
                            x=list(range(self.effects[kind].shape[0])), row=1, col=col)
            fig.update_xaxes(title_text="layer", row=1, col=col)
        fig.update_yaxes(autorange="reversed")
        fig.update_layout(title=f"mean indirect effect over {self.n_facts} facts (P clean {self.p_clean:.3f}, "
                                f"corrupt {self.p_corrupt:.3f})", coloraxis={"colorscale": "Purples"})
        return fig


def trace_facts(model, facts: list[Fact], config: TraceConfig | None = None) -> TraceSummary:
    """Trace every fact and average the indirect effects by token role.

    Under `torchrun` rank r traces facts r, r + world, ...; the sums behind the averages are
    all-reduced, so every rank returns the summary of all facts (`traces` holds its own share)."""
    import time

    if not facts:
        raise InputError("trace_facts needs at least one fact")
    config = config or TraceConfig()
    rank, world = ddp.rank(), ddp.world_size()
    start = time.perf_counter()
    mine = facts[rank::world]
    traces = [causal_trace(model, f, config) for f in progress(mine, desc="causal tracing")]
    seconds = time.perf_counter() - start
    n = model.cfg.n_layers
    sums = []
    for kind in config.kinds:
        total = torch.zeros(n, len(ROLES), dtype=torch.float64)
        count = torch.zeros(len(ROLES), dtype=torch.float64)
        for tr in traces:
            ie = tr.indirect_effect(kind).double()
            for pos, role in enumerate(token_roles(len(tr.tokens), *tr.subject_range)):
                if role is not None:
                    total[:, role] += ie[:, pos]
                    count[role] += 1
        sums += [total, count]
    probs = torch.tensor([sum(t.p_clean for t in traces), sum(t.p_corrupt for t in traces)], dtype=torch.float64)
    sums, probs = [ddp.all_reduce_sum(x) for x in sums], ddp.all_reduce_sum(probs)
    effects = {kind: (sums[2 * i] / sums[2 * i + 1].where(sums[2 * i + 1] > 0, torch.tensor(float("nan"),
                      dtype=torch.float64))).float() for i, kind in enumerate(config.kinds)}
    return TraceSummary(n_facts=len(facts), p_clean=float(probs[0]) / len(facts),
                        p_corrupt=float(probs[1]) / len(facts), effects=effects, roles=ROLES, seconds=seconds,
                        traces=traces)
