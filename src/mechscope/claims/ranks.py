"""The report's claims split across torchrun ranks: each rank runs its share (and their null twins),
rank 0 collects every result.

    torchrun --nproc-per-node 2 -m mechscope report organism:tiny-gpt2 --claims C02,C05,C09,C17

The claims form one queue, longest estimated first (claims/cost.py; the estimate is computed on rank 0
and broadcast), and each rank takes the next claim when it finishes one, through an atomic counter in
the process group's store: estimates are often off by 2x, and a split made up front by them leaves one
rank idle while another works through what was underestimated (a random 576-wide 4-block LLaMA, claims
C06, C09, C15, C20 on 2 ranks: the up-front split ran 107 s on one rank and 46 s on the other, the
queue 86 s in all, one process with both threads 113 s). Without a store (a process group set up
without one) the claims are split up front with `split_claims`. A claim is seeded with budget.seed just before it runs
(claims/registry.py), and each rank builds the same seeded null twin, so a claim's numbers do not depend
on which rank ran it: the report equals a one-process run at the same threads per process apart from
timings. In one process this is `run_claims`.

Usage::

    results = run_claims_on_ranks(model, ids, budget, costs={"C01": 12.0, ...})
    # rank 0: every result in id order; other ranks: None
"""

from __future__ import annotations

from collections.abc import Iterator

from mechscope import distributed as ddp
from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.registry import (
    ClaimRunner,
    ClaimSpec,
    ProgressCallback,
    discover,
    parse_ids,
    run_claims,
    select,
)

_queues = 0   # queues made in this process: each run's counter gets its own key (every rank counts alike)


def split_claims(ids: list[str], costs: dict[str, float], n_ranks: int) -> list[list[str]]:
    """`ids` split into n_ranks lists of balanced estimated cost (every id exactly once, id order kept)."""
    parts = ddp.balanced_split([costs.get(i, 0.0) for i in ids], n_ranks)
    return [[ids[j] for j in part] for part in parts]


def run_claims_on_ranks(model, ids=None, budget: Budget | None = None, *, costs: dict[str, float] | None = None,
                        on_progress: ProgressCallback | None = None, specs=None,
                        null_twin=None) -> list[ClaimResult] | None:
    """Run the claims this rank takes from the shared queue; on rank 0 return every rank's results in id
    order (None on the other ranks). costs: estimated seconds per claim id (rank 0's are used everywhere;
    the queue runs the longest first); without them, id order. on_progress sees this rank's claims only,
    each with its place in id order."""
    chosen = select(specs if specs is not None else discover(), parse_ids(ids))
    if not ddp.is_distributed():
        return run_claims(model, budget=budget, on_progress=on_progress, specs=chosen, null_twin=null_twin)
    costs = ddp.broadcast_object(costs or {}, src=0)
    place = {s.id: i for i, s in enumerate(chosen, start=1)}
    global _queues
    _queues += 1
    taken = _taken(chosen, costs, ddp.rank(), ddp.world_size(), ddp.default_store(),
                   key=f"mechscope/claims/queue{_queues}")
    with ddp.local_only():   # ranks run different claims: their analyses must not meet in collectives
        runner = ClaimRunner(model, budget, null_twin)
        results = [runner.run(spec, place[spec.id], len(chosen), on_progress) for spec in taken]
    gathered = ddp.gather_objects(results, dst=0)
    if gathered is None:
        return None
    by_id = {r.id: r for part in gathered for r in part}
    return [by_id[s.id] for s in chosen]


def _taken(chosen: list[ClaimSpec], costs: dict[str, float], rank: int, world: int, store,
           key: str = "mechscope/claims/queue") -> Iterator[ClaimSpec]:
    """The claims this rank runs, one at a time: the next of the longest-first queue whenever it asks,
    through the store's atomic counter at `key`; the up-front split of the estimate without a store."""
    queue = sorted(chosen, key=lambda s: (-ddp.clean_cost(costs.get(s.id, 0.0)), s.id))
    if store is None:
        mine = set(split_claims([s.id for s in chosen], costs, world)[rank])
        yield from (s for s in queue if s.id in mine)
        return
    while (taken := store.add(key, 1) - 1) < len(queue):
        yield queue[taken]
