"""The report's claims split across torchrun ranks: each rank runs its share (and their null twins),
rank 0 collects every result.

    torchrun --nproc-per-node 2 -m mechscope report organism:tiny-gpt2 --claims C02,C09,C17

The split balances the estimated seconds per claim (claims/cost.py) with `balanced_split`; the
estimate is computed on rank 0 and broadcast, so every rank computes the same split. A claim is
seeded with budget.seed just before it runs (claims/registry.py), and each rank builds the same
seeded null twin, so a claim's numbers do not depend on which rank ran it: the report equals a
one-process run apart from timings. In one process this is `run_claims`.

Usage::

    results = run_claims_on_ranks(model, ids, budget, costs={"C01": 12.0, ...})
    # rank 0: every result in id order; other ranks: None
"""

from __future__ import annotations

from mechscope import distributed as ddp
from mechscope.claims.base import Budget, ClaimResult
from mechscope.claims.registry import ProgressCallback, discover, parse_ids, run_claims, select


def split_claims(ids: list[str], costs: dict[str, float], n_ranks: int) -> list[list[str]]:
    """`ids` split into n_ranks lists of balanced estimated cost (every id exactly once, id order kept)."""
    parts = ddp.balanced_split([costs.get(i, 0.0) for i in ids], n_ranks)
    return [[ids[j] for j in part] for part in parts]


def run_claims_on_ranks(model, ids=None, budget: Budget | None = None, *, costs: dict[str, float] | None = None,
                        on_progress: ProgressCallback | None = None, specs=None,
                        null_twin=None) -> list[ClaimResult] | None:
    """Run this rank's share of the selected claims; on rank 0 return every rank's results in id order
    (None on the other ranks). costs: estimated seconds per claim id (rank 0's are used everywhere);
    without them the claims are dealt round-robin. on_progress sees this rank's claims only."""
    chosen = select(specs if specs is not None else discover(), parse_ids(ids))
    if not ddp.is_distributed():
        return run_claims(model, budget=budget, on_progress=on_progress, specs=chosen, null_twin=null_twin)
    costs = ddp.broadcast_object(costs or {}, src=0)
    order = [s.id for s in chosen]
    if costs:
        mine = set(split_claims(order, costs, ddp.world_size())[ddp.rank()])
    else:
        mine = set(ddp.shard(order))
    with ddp.local_only():   # ranks run different claims: their analyses must not meet in collectives
        results = run_claims(model, budget=budget, on_progress=on_progress, null_twin=null_twin,
                             specs=[s for s in chosen if s.id in mine])
    gathered = ddp.gather_objects(results, dst=0)
    if gathered is None:
        return None
    by_id = {r.id: r for part in gathered for r in part}
    return [by_id[i] for i in order]
