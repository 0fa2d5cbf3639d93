"""Enforced circuits: train designated heads to implement a known circuit while the rest learns freely.

The high-level model is the textbook lag-1 induction circuit on repeated random spans
(<|endoftext|> + P random tokens + span + span):

- ``previous_head`` (layer 0) attends from every position to the one before it;
- ``induction_head`` (a later layer) attends, in the second copy, from r_i to the token after the
  earlier occurrence of r_i, and its output alone decides the prediction r_{i+1}.

Three terms on `Enforcement.rows` such rows per step (their own seeded stream, one prefix length and
span length per step, so positions line up across rows), added to the task loss on text:

1. **pattern**: cross-entropy of each designated head's attention against the high-level model's
   target key (previous token; token after the earlier occurrence, second copy only), plus the
   task loss on the second copy (the behaviour);
2. **interchange (IIT)**: the induction head's output at the second copy is taken from another row
   (the source); the model must then predict the source's next token, the high-level model's
   counterfactual (Geiger et al. 2022; Gupta et al. 2024, InterpBench);
3. **strictness (SIIT)**: every head outside the circuit and every MLP is mean-ablated (its output
   replaced by its mean over the rows, per position, the ablation the faithfulness tests use) and
   the model must still predict the second copy.

The pattern term stands in for an interchange on the previous-token head: its high-level effect is
where the induction head's key points, which the pattern term states directly, while an
interchange would need source rows sharing the base's tokens to have a defined counterfactual.
The copy positions alone are unembedded (`logits_to_keep`), so the three forwards cost about as much as
the text rows of a step.
"""

from __future__ import annotations

import dataclasses
import re
from contextlib import contextmanager

import torch
import torch.nn.functional as F

from mechscope.errors import InputError
from mechscope.organisms.batches import induction_batch

_HEAD = re.compile(r"^a(\d+)\.h(\d+)$")
STREAM = 11   # the seeded stream of enforcement rows (batches.induction_batch: 7 warm-up, 8 padded rows)


def parse_head(name: str) -> tuple[int, int]:
    """"a0.h1" -> (0, 1)."""
    match = _HEAD.match(name)
    if not match:
        raise InputError(f"head {name!r} is not named a{{layer}}.h{{head}}")
    return int(match[1]), int(match[2])


@dataclasses.dataclass
class Enforcement:
    """Which heads carry the circuit, and the rows and weights of the enforcement terms."""

    previous_head: str = "a0.h1"
    induction_head: str = "a1.h2"
    rows: int = 32                 # enforcement rows per step (with 8 the induction head's OV copy was data-starved)
    max_prefix: int = 10           # random tokens before the span: 0..this, drawn per step
    min_span: int = 2              # span lengths min_span..max_span: short spans leave lag 1 the only circuit,
    max_span: int = 32             # long ones train the induction head's key match over long distances
    pattern_weight: float = 1.0
    interchange_weight: float = 1.0      # 0 turns the interchange term off and skips its forward
    task_weight: float = 1.0             # the enforcement rows' own next-token loss (its gradient can swamp the text's)
    strict_weight: float = 1.0           # 0 turns strictness off and skips its forward

    def heads(self) -> tuple[tuple[int, int], tuple[int, int]]:
        previous, induction = parse_head(self.previous_head), parse_head(self.induction_head)
        if previous[0] >= induction[0]:
            raise InputError(f"the previous-token head {self.previous_head} must sit in an earlier layer "
                             f"than the induction head {self.induction_head}")
        return previous, induction


@dataclasses.dataclass
class Rows:
    """x: [rows, 1 + P + 2 * span] ids; the second copy occupies positions second..second + span - 1."""

    x: torch.Tensor
    n_prefix: int
    span: int

    @property
    def second(self) -> int:
        return 1 + self.n_prefix + self.span

    def copy_positions(self) -> torch.Tensor:
        """Query positions whose next token is copied: r_1..r_{n-1} of the second copy. [span - 1]"""
        return torch.arange(self.second, self.second + self.span - 1)


def enforcement_rows(step: int, cfg: Enforcement, vocab_size: int, seed: int, eos: int) -> Rows:
    x, n_prefix = induction_batch(step, cfg.rows, vocab_size, seed, eos, stream=STREAM, max_prefix=cfg.max_prefix,
                                  min_span=cfg.min_span, max_span=cfg.max_span)
    return Rows(x, n_prefix, (x.shape[1] - 1 - n_prefix) // 2)


class Taps:
    """Forward hooks on an HF model: record each layer's head outputs z (the input of the attention's
    output projection, [batch pos head*d_head]), MLP outputs [batch pos d_model] and attention
    patterns [batch head q k] (eager attention only), or replace them (`replace`: module key ->
    function of the recorded tensor)."""

    def __init__(self, model):
        from mechscope.model.adapters import table_for

        table = table_for(model)
        layers = model.get_submodule(table.layers)
        self.n_heads = model.config.num_attention_heads
        self.modules = {}
        for i, layer in enumerate(layers):
            attn = layer.get_submodule(table.attn)
            self.modules[("attn", i)] = attn
            self.modules[("z", i)] = attn.get_submodule(table.out_proj)
            self.modules[("mlp", i)] = layer.get_submodule(table.mlp)
        self.seen: dict = {}

    @contextmanager
    def run(self, replace: dict | None = None):
        """Inside, forwards record into `self.seen` (cleared on entry) and apply `replace`."""
        replace = replace or {}
        self.seen = {}
        handles = []
        for key, module in self.modules.items():
            if key[0] == "z":
                def pre(mod, args, key=key):
                    self.seen[key] = args[0]
                    if key in replace:
                        return (replace[key](args[0]),) + args[1:]
                    return None
                handles.append(module.register_forward_pre_hook(pre))
            else:
                def post(mod, args, out, key=key):
                    tensor = out[0] if isinstance(out, tuple) else out
                    self.seen[key] = out[1] if key[0] == "attn" else tensor
                    if key in replace:
                        return replace[key](out)
                    return None
                handles.append(module.register_forward_hook(post))
        try:
            yield self
        finally:
            for h in handles:
                h.remove()

    def head_slice(self, z: torch.Tensor, head: int) -> slice:
        d_head = z.shape[-1] // self.n_heads
        return slice(head * d_head, (head + 1) * d_head)


def attention_nll(weights: torch.Tensor) -> torch.Tensor:
    """Mean -log of attention weights a head should have put on its target keys (any shape)."""
    return -weights.clamp_min(1e-6).log().mean()


def _pattern_loss(pattern: torch.Tensor, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Mean -log attention from each query to its target key; pattern [batch q k] of one head."""
    return attention_nll(pattern[:, queries, keys])


def _next_token_loss(model, rows: Rows, positions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of predicting targets[:, q + 1] at each position q in `positions` [n]; only those
    positions are unembedded (`logits_to_keep`: the unembedding is most of a small model's cost)."""
    logits = model(input_ids=rows.x, use_cache=False, logits_to_keep=positions).logits     # [rows n vocab]
    return F.cross_entropy(logits.flatten(0, 1).float(), targets[:, positions + 1].flatten())


def enforcement_losses(model, rows: Rows, cfg: Enforcement, taps: Taps) -> dict[str, torch.Tensor]:
    """{"task", "pattern", "interchange", "strict"}: the scalar losses of one step (module docstring)."""
    (l_prev, h_prev), (l_ind, h_ind) = cfg.heads()
    x = rows.x
    q = rows.copy_positions()
    with taps.run():
        task = _next_token_loss(model, rows, q, x)
    seen = taps.seen
    if seen[("attn", l_prev)] is None:
        raise InputError("enforcing a circuit needs attention weights: load the model with attn_implementation='eager'")
    pos = torch.arange(1, x.shape[1])
    pattern = (_pattern_loss(seen[("attn", l_prev)][:, h_prev], pos, pos - 1)
               + _pattern_loss(seen[("attn", l_ind)][:, h_ind], q, q - rows.span + 1))
    losses = {"task": task, "pattern": pattern}

    if cfg.interchange_weight == 0:   # off: skip its forward, as for strictness below
        losses["interchange"] = task.new_zeros(())
    else:
        z_ind = seen[("z", l_ind)]
        cols = taps.head_slice(z_ind, h_ind)
        source = z_ind[:, :, cols].roll(1, dims=0)      # row i takes row i-1's induction output

        def interchange(z):
            z = z.clone()
            z[:, q, cols] = source[:, q]
            return z

        with taps.run({("z", l_ind): interchange}):
            losses["interchange"] = _next_token_loss(model, rows, q, x.roll(1, dims=0))

    if cfg.strict_weight == 0:      # strictness off: skip its forward (a third of the enforcement's cost)
        losses["strict"] = task.new_zeros(())
        return losses
    keep = {(l_prev, h_prev), (l_ind, h_ind)}
    replace = {}
    for (kind, layer), value in seen.items():
        if kind == "z":
            mean = value.detach().mean(0, keepdim=True)
            ablated = [h for h in range(taps.n_heads) if (layer, h) not in keep]

            def mean_heads(z, mean=mean, ablated=ablated):
                z = z.clone()
                for h in ablated:
                    cols_h = taps.head_slice(z, h)
                    z[:, :, cols_h] = mean[:, :, cols_h]
                return z
            replace[(kind, layer)] = mean_heads
        elif kind == "mlp":
            mean = value.detach().mean(0, keepdim=True)
            replace[(kind, layer)] = lambda out, mean=mean: mean.expand_as(out)
    with taps.run(replace):
        losses["strict"] = _next_token_loss(model, rows, q, x)
    return losses


def total_enforcement_loss(losses: dict[str, torch.Tensor], cfg: Enforcement) -> torch.Tensor:
    return (cfg.task_weight * losses["task"] + cfg.pattern_weight * losses["pattern"]
            + cfg.interchange_weight * losses["interchange"] + cfg.strict_weight * losses["strict"])

