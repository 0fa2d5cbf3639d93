"""How long the report will take, before it starts: a cost model per claim, calibrated on the model.

A claim's work is counted in three units, each priced by timing the loaded model once (`calibrate`):

- tokens: token positions pushed through the whole model (a backward pass counts as 2 more); priced
  at the seconds per token of one timed forward of [8 seq_len], so the price grows with the model's
  size (layers, d_model, vocabulary) and follows the device, dtype and load of the machine;
  block_tokens: the same through the blocks only (a run that unembeds one position, or none), priced
  at the blocks' share of that forward's flops (`forward_flops_per_token`);
- calls: Python-side steps (one forward call, one optimiser step of a small trained probe/SAE, a
  ridge fit), priced at one timed forward of [1 8] tokens;
- flops: arithmetic outside the model (a tuned lens or SAE trained on cached activations), priced at
  the model's measured throughput (its forward flops per token / seconds per token);
- steps: optimiser and Python steps that do not run the model (a probe, lens, SAE or toy-model update
  on cached data; their arithmetic is in flops), priced at one timed Adam step of a small autoencoder,
  so they do not grow with the model the way a forward call does.

A claim module may define ``cost(cfg, budget) -> Cost`` (its own cost model, per model run; when NULL ==
"twin" the twin's run is priced under the budget that reads only NULL_READS, `base.null_budget`);
otherwise the table below holds it. The table's constants are the
counts of forwards and tokens measured on organism:tiny-gpt2 (4 layers) under the quick budget,
scaled by the budget knobs and model sizes each claim's work grows with (its docstring's "Cost:").
Estimates are approximate: on organism:tiny-gpt2 the total is within a factor of 3 of the time taken
(tests/report/test_estimate.py); a claim whose budget changed since the table was written can be
further off, which the report shows beside the measured seconds.

    est = estimate(model, specs, budget)
    est.total_seconds, est.per_claim["C09"]
"""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Callable
from types import SimpleNamespace

from mechscope.claims.base import NULL_TWIN, Budget, null_budget

REFERENCE_PROMPTS, REFERENCE_TOKENS, REFERENCE_HEADS = 32, 16 * 64, 16   # tiny-gpt2 under quick


@dataclasses.dataclass(frozen=True)
class Cost:
    """The work of one run of a claim's measure() on one model (see the module docstring for units)."""

    tokens: float = 0.0
    calls: float = 0.0
    flops: float = 0.0
    steps: float = 0.0
    block_tokens: float = 0.0       # token positions through every block, not unembedded


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Prices measured on the model: seconds per token forwarded, per call, flops per second, and
    seconds per optimiser step off the model."""

    seconds_per_token: float
    seconds_per_call: float
    flops_per_second: float
    seconds_per_step: float = 1e-3
    block_share: float = 1.0         # the blocks' share of a token's forward (the rest: unembedding)

    def seconds(self, cost: Cost) -> float:
        return ((cost.tokens + cost.block_tokens * self.block_share) * self.seconds_per_token
                + cost.calls * self.seconds_per_call + cost.flops / self.flops_per_second
                + cost.steps * self.seconds_per_step)


@dataclasses.dataclass
class Estimate:
    """Estimated seconds per claim (model and twin together) and in total, with the prices used."""

    per_claim: dict[str, float]
    calibration: Calibration

    @property
    def total_seconds(self) -> float:
        return float(sum(self.per_claim.values()))

    def to_dict(self) -> dict:
        return {"total_seconds": round(self.total_seconds, 1),
                "per_claim": {k: round(v, 2) for k, v in self.per_claim.items()},
                "calibration": dataclasses.asdict(self.calibration)}


def forward_flops_per_token(cfg, seq_len: int) -> float:
    """Multiply-adds x 2 of one token through the model: the blocks' matmuls, attention over seq_len
    positions and the unembedding."""
    d, n_layers = cfg.d_model, cfg.n_layers
    d_mlp = getattr(cfg, "d_mlp", 4 * d) or 4 * d
    mlp = (3 if getattr(cfg, "gated_mlp", False) else 2) * d * d_mlp
    attn = 4 * d * d + 2 * seq_len * d
    return 2.0 * (n_layers * (mlp + attn) + d * cfg.d_vocab)


def calibrate(model, seq_len: int = 64, repeats: int = 3,
              clock: Callable[[], float] = time.perf_counter) -> Calibration:
    """Time forwards of [8 seq_len] and [1 8] random tokens on `model` (median of `repeats`); `clock`:
    wall time (what the report shows), or time.process_time for CPU seconds on a shared machine."""
    import torch

    seq_len = max(8, min(seq_len, getattr(model.cfg, "n_ctx", seq_len) or seq_len))
    gen = torch.Generator().manual_seed(0)
    big = torch.randint(0, model.cfg.d_vocab, (8, seq_len), generator=gen)
    small = big[:1, :8]
    t_big, t_small = _median_time(model, big, repeats, clock), _median_time(model, small, repeats, clock)
    per_token = max(t_big - t_small, 0.1 * t_big) / big.numel()
    flops = forward_flops_per_token(model.cfg, seq_len)
    return Calibration(seconds_per_token=per_token, seconds_per_call=t_small, flops_per_second=flops / per_token,
                       seconds_per_step=_step_time(repeats, clock),
                       block_share=1.0 - 2.0 * model.cfg.d_model * model.cfg.d_vocab / flops)


def _step_time(repeats: int, clock: Callable[[], float], steps: int = 20) -> float:
    """Seconds of one Adam step of a 64 -> 256 -> 64 autoencoder on 256 rows (CPU): the per-step
    overhead of the small trainings claims run on cached activations."""
    import torch

    gen = torch.Generator().manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 64))
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    x = torch.randn(256, 64, generator=gen)
    times = []
    for _ in range(repeats + 1):
        start = clock()
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            (net(x) - x).pow(2).mean().backward()
            opt.step()
        times.append((clock() - start) / steps)
    return statistics.median(times[1:])     # the first round warms the allocator


def _median_time(model, tokens, repeats: int, clock: Callable[[], float] = time.perf_counter) -> float:
    import torch

    times = []
    with torch.no_grad():
        model(tokens)   # warm-up: allocations, lazy init
        for _ in range(repeats):
            start = clock()
            model(tokens)
            if tokens.device.type == "cuda" or str(model.device).startswith("cuda"):
                torch.cuda.synchronize()
            times.append(clock() - start)
    return statistics.median(times)


def estimate(model, specs, budget: Budget, calibration: Calibration | None = None) -> Estimate:
    """Estimated seconds for each spec (ClaimSpec) on `model` under `budget`; 0 for unimplemented ones."""
    cal = calibration or calibrate(model, budget.seq_len)
    per_claim = {}
    for spec in specs:
        cost = claim_cost(spec, model.cfg, budget)
        if cost is None:
            per_claim[spec.id] = 0.0
            continue
        seconds = cal.seconds(cost)
        if str(getattr(spec.module, "NULL", "")) == NULL_TWIN:   # the twin's run reads only NULL_READS
            seconds += cal.seconds(claim_cost(spec, model.cfg, null_budget(spec.module, budget)))
        per_claim[spec.id] = seconds if math.isfinite(seconds) else 0.0
    return Estimate(per_claim=per_claim, calibration=cal)


def estimate_saved(config: dict, calibration: dict, specs, budget: Budget, twin: bool = True) -> Estimate:
    """The estimate from a saved ModelConfig dict and Calibration dict (bench/bench_report_scale.py records
    both beside the seconds the claims took), without the model; `twin`: False prices the model's run only."""
    from mechscope.model.config import ModelConfig

    if not twin:
        specs = [dataclasses.replace(s, module=SimpleNamespace(**{**vars(s.module), "NULL": "not run"}))
                 if s.module is not None else s for s in specs]
    return estimate(SimpleNamespace(cfg=ModelConfig(**config)), specs, budget, Calibration(**calibration))


def claim_cost(spec, cfg, budget: Budget) -> Cost | None:
    """The claim's own `cost(cfg, budget)`, else the table's; None for a claim that will not run."""
    if spec.module is None:
        return None
    own = getattr(spec.module, "cost", None)
    if callable(own):
        return own(cfg, budget)
    rule = COSTS.get(spec.id)
    return rule(cfg, budget, spec.module) if rule is not None else Cost(calls=100)


def _knobs(cfg, b: Budget) -> dict[str, float]:
    n_layers, n_heads = cfg.n_layers, cfg.n_heads
    exact_layers = n_layers if b.max_layers is None else min(n_layers, b.max_layers)
    return {
        "P": b.n_prompts / REFERENCE_PROMPTS,                    # prompts, relative to the reference
        "T": b.n_sequences * b.seq_len,                          # text tokens
        "t": b.n_sequences * b.seq_len / REFERENCE_TOKENS,
        "S": b.train_steps,
        "Lb": len(b.layers(n_layers)),                           # layers a per-layer sweep visits
        "H": exact_layers * n_heads / REFERENCE_HEADS,           # heads patched exactly, relative
        "d": cfg.d_model, "V": cfg.d_vocab, "L": n_layers,
    }


def _quick(b: Budget, module, name: str, default: int) -> int:
    return getattr(module, name, default) if b.name == "quick" else b.train_steps


def _c01(cfg, b, module):
    k = _knobs(cfg, b)
    steps = _quick(b, module, "QUICK_STEPS", 60)
    vocab = min(k["V"], getattr(module, "QUICK_VOCAB", k["V"])) if b.name == "quick" else k["V"]
    points = min(k["L"] + 1, b.max_layers or k["L"] + 1)
    exact_readout = 2 * points * k["T"] * 2.0 * k["d"] * k["V"]    # 2 x P full-vocabulary unembeddings
    return Cost(tokens=4 * k["T"], steps=7 * steps,
                flops=6.0 * steps * points * 128 * k["d"] * vocab + exact_readout)


def _sae_flops(steps: float, d: float, d_sae: float, rows: int = 256) -> float:
    """Encoder and decoder matmuls, forward and backward, of `steps` steps of `rows` activations."""
    return 2 * 6.0 * steps * rows * d * d_sae


def _sae(steps_per: float, tokens_per_t: float, calls_per_step: float, width: float = 8.0):
    """Dictionaries (SAEs, transcoders) trained for budget.train_steps steps of 256 activations each."""
    def rule(cfg, b, module):
        k = _knobs(cfg, b)
        return Cost(tokens=tokens_per_t * k["T"], steps=steps_per * k["S"] * calls_per_step,
                    flops=_sae_flops(steps_per * k["S"], k["d"], width * k["d"]))
    return rule


def _c21(cfg, b, module):
    """Transcoders on every layer (at most budget.max_latents latents), then attribution graphs of
    module.PROMPT_TOKENS tokens: a forward of 64 prompt copies and one backward (~3 forward-tokens per token)
    per feature or logit row."""
    from mechscope.dictionary.transcoder_training import TranscoderRun

    k = _knobs(cfg, b)
    latents = b.latents(cfg.d_model, module.EXPANSION)
    tokens = module.PROMPT_TOKENS
    active = TranscoderRun().k_for(cfg.d_model) * tokens * cfg.n_layers
    rows = (active if b.max_graph_features is None else min(active, b.max_graph_features)) + 10
    train = _sae(k["L"] * module.layer_steps(cfg.n_layers, b) / b.train_steps, 9, 3.5,
                 width=latents / cfg.d_model)(cfg, b, module)
    return dataclasses.replace(train, tokens=train.tokens + module.n_graphs_for(b) * tokens * (64 + 3 * rows))


PROMPT_TOKENS = {"C10": 16, "C11": 48}   # IOI and docstring prompts (GPT-2 and organism tokenizers alike)


def _head_circuit(cfg, b, module):
    """claims/head_circuit.py: the baseline (2 x FIRST_PROMPTS prompts expected under quick, since a
    reading near a threshold doubles them; 256 under full), two forwards each at the answer position; a
    per-head sweep on n_prompts / 2 prompts, every head exactly on models within budget.max_layers, else an
    attribution screen (two forwards and a backward) and exact patches of EXACT_MARGIN x the circuit's
    size, each from its head's layer on (half the blocks on average); the faithfulness run."""
    from mechscope.claims.head_circuit import EXACT_MARGIN, FIRST_PROMPTS

    heads = cfg.n_layers * cfg.n_heads
    exact = b.exact_heads(cfg.n_layers, cfg.n_heads)
    screened = exact is not None
    if screened:
        exact = min(exact, math.ceil(EXACT_MARGIN * max(2, round(module.CIRCUIT_FRACTION * heads))))
    else:
        exact = heads
    p, n = PROMPT_TOKENS[module.ID], b.n_prompts / 2
    if not b.reads_any(*module.CIRCUIT_READS):   # the twin's run: the first prompts' baseline
        return Cost(block_tokens=2 * FIRST_PROMPTS * p, calls=4)
    baseline = 2 * (2 * FIRST_PROMPTS if b.max_layers is not None else 256) * p
    return Cost(block_tokens=baseline + exact * n * p / 2 + (3 * n * p if screened else 0) + 4 * n * p,
                calls=exact + 20)


def _c14(cfg, b, module):
    """claims/c14_mlp_memory.py's sizes: traced cells (kinds x layers x ~4 positions from the subject on) x
    n_samples rows of ~10 tokens per fact, each from its first restored block; ROME's 20 Adam steps on
    n_prefixes + 2 prompts down to the edited layer (~half the depth); E[kkᵀ] over cov_sequences x
    n_sequences x seq_len tokens, forwards stopped at the edited layer. The first read of rewrites: a model
    whose edit readings sit on a threshold edits up to one per fact (tiny-llama: 16, 8.7 s against 5.1)."""
    size = module.sizes(SimpleNamespace(cfg=cfg), b)
    facts, p, half = min(b.n_prompts, 16), 10, 0.5
    rewrites = size.max_rewrites or max(3, b.n_prompts // 6)
    trace = facts * len(size.kinds) * cfg.n_layers * 4 * size.n_samples * p * half
    if not b.reads_any(*module.EDIT_READS):   # the twin's run: the traces
        return Cost(block_tokens=trace, calls=facts * len(size.kinds))
    edit = rewrites * 20 * (size.n_prefixes + 2) * p * 3 * half
    covariance = size.cov_sequences * b.n_sequences * b.seq_len * half
    return Cost(block_tokens=trace + edit + covariance, calls=3 * rewrites * 20 + facts * (len(size.kinds) + 4))


def _c09(cfg, b, module):
    """Three span sweeps (~2,200 tokens at 16 rows) and seven ablation passes over the best span's rows;
    the twin's run skips the ablations."""
    ablate = b.reads_any(*module.ABLATION_READS)
    return Cost(tokens=(8096 if ablate else 2200) * b.n_sequences / 16, calls=60 if ablate else 6)


def _c13(cfg, b, module):
    """Measured on organism:tiny-gpt2 with both curves; the mean-ablation curve is about half the work."""
    with_mean = module.with_mean_curve(cfg.n_layers, b) if hasattr(module, "with_mean_curve") else True
    return Cost(tokens=62400 * _knobs(cfg, b)["P"] * (1 if with_mean else 0.5), calls=250)


def _c18(cfg, b, module):
    """claims/c18_stages.py: B = budget.layers blocks deleted (and B - 1 pairs swapped within max_layers),
    each run from the edited block on (half the depth on average) plus the unembedding of its tokens;
    deeper models read DEEP_SEQUENCE_SHARE of the text and skip the swaps."""
    k = _knobs(cfg, b)
    deep = b.max_layers is not None and cfg.n_layers > b.max_layers
    edits = k["Lb"] if deep else 2 * k["Lb"] - 1
    tokens = k["T"] * (getattr(module, "DEEP_SEQUENCE_SHARE", 0.5) if deep else 1.0)
    return Cost(tokens=k["T"] + edits * tokens * 0.25, block_tokens=edits * tokens * 0.5, calls=10 * k["Lb"])


def _c16(cfg, b, module):
    k = _knobs(cfg, b)
    if not b.reads_any(*module.FINE_TUNE_READS):   # the twin's run: the freeze cost, no fine-tune
        return Cost(tokens=4 * k["T"], calls=10 * k["Lb"])
    steps = module.fine_tune_steps(max(getattr(cfg, "n_params", 1) or 1, 1), b, module.NOMINAL_TRAIN_TOKENS)
    return Cost(tokens=2 * steps * module.batch_size(b) * b.seq_len * 3 + 8 * k["T"], calls=16 * steps + 20 * k["Lb"])


_Rule = Callable[[object, Budget, object], Cost]
COSTS: dict[str, _Rule] = {
    "C01": _c01,
    "C02": lambda c, b, m: Cost(tokens=_knobs(c, b)["T"], calls=2),
    "C03": lambda c, b, m: Cost(calls=10),
    "C04": lambda c, b, m: Cost(steps=1.5 * b.train_steps, flops=_sae_flops(b.train_steps, c.d_model, b.latents(c.d_model, 8))),
    "C05": lambda c, b, m: Cost(calls=15, flops=2.0 * c.d_vocab * c.d_model ** 2),
    "C06": lambda c, b, m: Cost(tokens=1120, calls=160),
    "C07": lambda c, b, m: Cost(block_tokens=14210 * _knobs(c, b)["Lb"] / 8, calls=600),
    "C08": lambda c, b, m: Cost(steps=1500 if b.name == "quick" else 4000 + 10_000),
    "C09": _c09,
    "C10": _head_circuit,
    "C11": _head_circuit,
    "C12": lambda c, b, m: Cost(tokens=960 * _knobs(c, b)["Lb"] / 4 * min(b.n_prompts, 16) / 16, calls=5),
    "C13": _c13,
    "C14": _c14,
    "C15": _sae(2, 12, 0.5, width=4.0),
    "C16": _c16,
    "C17": lambda c, b, m: Cost(tokens=_knobs(c, b)["T"], calls=2),
    "C18": _c18,
    "C19": lambda c, b, m: Cost(tokens=6720 * _knobs(c, b)["P"], calls=400),
    "C20": _sae(1, 9, 2.4),
    "C21": _c21,
}
