"""Documented organism presets: architecture, corpus mix and training schedule in one dataclass.

- ``tiny-gpt2`` (the learned-position organism, for the positional claims C03 and C04): GPT-2 blocks
  (learned positions, LayerNorm, GELU MLP, tied embeddings), 4 layers, d_model 128, 4 heads of 32, MLP
  512, context 128, byte-level BPE of 2048. 20000 steps; each batch is 8 rows of whole documents packed
  end to end (positions restart per document, attention stays inside it; ~31 documents a step) plus 4
  rows packed with a random span (2-20 tokens) repeated after a random prefix of 0-40 tokens, scored on
  the second copy only. d_model 128 rather than 256: on 2 CPU cores the smaller model gets ~4x more
  optimizer steps in the same time, and the planted mechanisms need steps. 29 min on 2 idle cores.
  Shipped metrics (training card, 200 prompts): IOI 0.93 (held-out names), fact recall 1.0, day and
  month arithmetic 1.0, docstring 0.96, held-out English 4.64 nats, induction ratio 0.76: learned
  positions give previous-token heads of at most 0.19, and no real induction. The previous recipe (one
  document per row, 65% padding, 15000 steps) reached IOI 0.965, docstring 0.93, held-out English 5.15,
  induction 0.74.
- ``tiny-llama`` (the default organism): ``tiny-llama-base`` (below) continued for 1000 steps (``init_from``;
  `mechscope organism train tiny-llama` trains the base into RUN/init first, or finds it finished there) at
  the base's final learning rate (3e-4, constant after 100 warm-up steps), on the same corpus, with two heads
  trained to a role while the rest stay free. 16 IOI rows a step (training names; each row joins one training
  template's opening, up to S, to another's ending: 49 combinations of 7) on which head a3.h2 is trained to be
  a name mover (organisms/enforce_name_mover.py: attention from END to IO, and its output at END interchanged
  between rows at a tenth of the weight, so that it carries which name is the answer); and 8 rows of a repeated
  random span after a random prefix (organisms/enforce.py, every weight at a tenth, strictness off) on which
  a2.h2 -> a3.h1 is trained to be the lag-1 induction circuit the base had grown, so that a3.h1 carries the
  copy rather than sharing it with a3.h3. 7.3 min on one thread. Shipped metrics (200 prompts, held-out
  names): a3.h2 attends END -> IO 0.95 (S 0.03), direct effect on IO - S 1.50, name-mover score 1.49 (the
  base's best: 0.017); mean-ablating it takes IO - S from 9.91 to 5.04 (64 prompts); IOI 0.96 (held-out
  templates 0.84, the base 0.935), fact recall 1.0, day and month arithmetic 1.0, docstring 0.98, held-out
  English 4.53 nats (base 4.45); induction: second/first-copy loss 0.004 / 0.004 / 0.006 at spans 8 / 16 / 32,
  previous-token a2.h2 1.00, lag-1 induction a3.h1 0.96 (a3.h3 0.27); mean-ablating a3.h1 alone undoes 63.9%
  of the drop, a3.h3 alone 0.5%, the two with a2.h3 76.9% (a3.h3 backs a3.h1 up). The name mover alone,
  without the induction rows (shipped before 2026-12-04): attends IO 0.95, effect 1.30, IOI 0.94, templates
  0.795, a3.h1's share 28.0% (base 30.7%; both heads 85%): issue 15's >= 30% missed, which the induction rows
  fix; at interchange weight 0.3 instead of 0.1 on them: share 68.1%, IOI 0.92, templates 0.765.
  The name mover alone with each row on one training template (not recombined): attends IO 0.87, effect 0.97, IOI 0.925,
  held-out templates 0.75, English 4.51, a3.h1's share 28.6%. Variants measured before that (weight 0.03 with
  this preset's code, the others with an earlier script that drew one template per step; the same continuation
  unless said): interchange weight 0 (1500 steps): a3.h2 attends IO 0.86 but writes little (direct effect
  0.31; the answer still comes from a3.h3 suppressing S, 1.84), IOI 0.97, held-out templates 0.955, English
  4.46; weight 1 (1500 steps): score 1.11, IOI 0.905, templates 0.59; weight 1 on a3.h0: score 0.96, IOI
  0.915, templates 0.675; weight 0.03: score 1.13, IOI 0.93, templates 0.76, English 4.53, a3.h3 the top
  induction head with a share of 0.25; weight 0 at lr 1e-4: score 0.14, IOI 0.98; weight 1 at lr 1e-4: score
  0.62, IOI 0.805. Every variant with the interchange on lost held-out templates (0.59-0.795): the head then
  carries the answer alone, and on templates it never saw its attention misses IO (a3.h2 not recombined, 200
  prompts each: END -> IO 0.92 on training templates, 0.49 on held-out ones, where accuracy falls to 0.70;
  recombined, shipped before: 0.95 and 0.62, accuracy 0.79). Training the pattern from every query after S2 rather
  than END's alone (so the query cannot key on END's own words) did not help: IOI 0.89 / templates 0.675 at
  weight 0.1, 0.775 / 0.665 at 0.3.
- ``tiny-llama-base`` (the run the default continues; shipped for its IOI by suppression): tiny-gpt2's
  recipe (8 rows of packed documents plus 4 rows of
  repeated random spans after prefixes of 0-40, scored on the second copy; 20000 steps; same corpus mix
  and world) on LLaMA blocks (RoPE, RMSNorm, SwiGLU MLP of 344, no biases, tied embeddings), with spans
  of 2-32 tokens (induction_max_span 32). 74 min on one thread of the shared machine, 51.3% of the
  measured matmul peak; two runs gave the same metrics to the last digit. Shipped metrics (200
  prompts): IOI 0.975 (held-out templates 0.935), fact recall 1.0, day and month arithmetic 1.0,
  docstring 1.0, held-out English 4.45 nats, induction ratio 0.012, with the textbook circuit:
  previous-token heads a2.h2 (0.96) and a2.h1 (0.91), lag-1 induction heads a3.h1 (0.90) and a3.h3
  (0.89); second/first-copy loss 0.0075 / 0.0068 / 0.0079 at spans 8 / 16 / 32 after random prefixes;
  mean-ablating a3.h1 alone undoes 30.7% of the drop, both heads 87%. Issue 15's default targets are
  met but the name movers (hence the continuation above): IO - S is written mostly by a3.h3 (direct effect 2.19), which attends to S2
  (0.96) and lowers S's logit (best name-mover score 0.017). Induction formed late, as the learning
  rate decayed: induction ratio 0.98 / 0.89 / 0.83 / 0.80 / 0.025 / 0.012 at steps 2000 / 6000 / 12000 /
  14000 / 16000 / 20000; IOI 0.46 / 0.70 / 0.975 / 0.97 / 0.91 / 0.975 at the same steps.
  The first tiny-llama, spans of 2-20 and otherwise the same: induction ratio 0.022, a2.h2 0.92 feeding
  a3.h1 0.92 and a3.h3 0.90, second/first-copy loss 0.008 / 0.008 / 0.50 at spans 8 / 16 / 32, a3.h1's
  ablation share 0.11 (both heads 0.80), IOI 0.92 (templates 0.89), docstring 0.995, English 4.47;
  its induction ratio 0.98 / 0.74 / 0.65 / 0.69 / 0.048 at 2000 / 6000 / 12000 / 16000 / 18000, IOI
  0.50 / 0.70 / 0.85 / 0.87 / 0.91 / 0.92 at 2000 / 6000 / 12000 / 16000 / 18000 /
  20000. Recipes tried for the same targets, all at one thread on the shared machine:
  enforcing a0.h1 -> a1.h2 (organisms/enforce.py; 16 enforcement rows, strictness off) beside 8
  document rows, 5000 steps: held-out English 6.54, IOI 0.475, docstring 0.055, fact recall 1.0, day
  arithmetic 1.0, induction ratio 0.009; the same with 6 enforcement rows, stopped at 4000 steps:
  English 6.88, IOI 0.485, facts 0.52, days 0.33; this recipe plus enforcement with the interchange and
  strictness terms off (4 rows), stopped at 2000 steps: English 6.49 (5.43 without), facts 0.34 (0.97),
  days 0.33 (1.0), and at a tenth of the pattern weight the two heads did not take the pattern (loss 2.7
  after 3100 steps) while text still lagged (6.02). Why, measured on the stopped runs' checkpoints: every
  term shares one gradient-norm clip (1.0), and the enforcement rows' own next-token loss (a separate,
  full-weight mean over the copy positions of random spans) dominates it: gradient norms at step 2000
  (pattern weight 1) text 0.85, enforcement next-token 10.7, pattern 2.7; at step 3000 (weight 0.1) 0.52,
  1.2, 0.70; at init 1.8, 3.0, 0.77. The clipped step shrinks the text's share about tenfold. With that
  term at a tenth (``task_weight=0.1``, pattern weight 1, 4 rows; a 10000-step schedule stopped at 6000)
  the heads took the pattern (loss 0.15 by step 1440) and induction formed by step 4000 (ratio 0.043;
  0.029 at 6000), where the same recipe without enforcement had none until step 18000; at 2000 / 4000 /
  6000 steps: held-out English 6.06 / 6.19 / 5.75 (without: 5.43 / 5.36 / 5.07), IOI 0.76 / 0.84 / 0.81
  with held-out templates at 0.50-0.57 (without: 0.50 / 0.61 / 0.70, templates 0.53 / 0.66 / 0.76),
  docstring 0.04 / 0.05 / 0.975, facts, days and months 1.0 by 6000. The same with strictness on at a
  tenth (strict_weight 0.1, for a single head that carries the copy), enforcement rows like the text's
  repeat rows (prefixes 0-40, spans 2-32, induction_max_span 32) and enforced heads a2.h2 -> a3.h1, a
  10000-step schedule stopped at 4240: the pattern loss stalled near 0.9 and the enforcement rows were
  not copied (their next-token loss 7.1, ln 2048 = 7.6); at 2000 / 4000 steps held-out English 6.41 /
  6.39, IOI 0.55 / 0.47, facts 0.51 / 0.94, days 0.21 / 0.43, docstring 0.03 / 0.04. Free, with spans
  to 32 (induction_max_span=32) on a 10000-step schedule (58 min beside other work, 42% of the peak):
  no induction formed (ratio 0.95 / 0.89 / 0.84 / 0.81 at 2500 / 5000 / 7500 / 10000; second/first copy
  0.89 / 0.83 / 0.90 at spans 8 / 16 / 32, best lag-1 score 0.11), IOI 0.50 / 0.65 / 0.69 / 0.77
  (written by a3.h2 and a3.h3 attending to S, 0.81 / 0.79), English 4.52, docstring, facts, days and
  months 1.0: as in the 20000-step run, copying waits for the late, low learning rate, so the span-32
  question needs the full schedule (~75 min of an idle thread): the shipped weights above are that run.
  For the name movers (2026-12-03): this recipe with half the IOI documents given a third name that is
  never the answer ("When A and B went to the PLACE without C, S gave a OBJECT to IO"; C in a sentence
  before, C leaving early, C named twice), so that copying the names in context, or every name but the
  repeated one, is not enough; stopped at 16000 of 20000 steps (one thread beside other work): IOI 0.95
  (held-out templates 0.895), induction ratio 0.013 (formed by step 14000), docstring 0.97, held-out
  English 4.42, facts, days and months 1.0; no name mover (best name-mover score 0.044: a3.h3 attends
  from END to IO 0.25, to S 0.35, direct effect -0.08): IO - S is written by a1.h2 (1.07) and a2.h3
  (0.64), which attend to S (0.92, 0.89) and lower its logit, as before.
  Earlier: 6 document rows, spans 1-20, 1200 steps: no mechanism but facts; the one-document-per-row recipe, 20000
  steps: IOI 0.765, docstring 0.86, induction ratio 0.63, previous-token heads 0.67.
- ``tiny-gpt2-docs``: same architecture, context 128, one document per row (no packing), 800
  warm-up steps on repeated random spans, then 2700 steps of 16 documents. Shipped metrics:
  docstring next argument 0.92, fact recall 0.65, IOI 0.49, induction ratio 0.99.
- ``induction-2l``: LLaMA blocks (RoPE, RMSNorm, SwiGLU), 2 layers, d_model 128, 4 heads, context
  128. Each batch: 12 rows of whole documents packed end to end (positions restart per document,
  attention stays inside it) plus 4 rows packed with repeated random spans after random prefixes
  of 0-40 tokens; a mix heavy in repeated spans (40%) and docstrings. 4000 steps, 4.7 min on 2
  idle cores. Shipped metrics: induction ratio 0.014, docstring 1.0, fact recall 1.0, IOI 0.41,
  held-out English 5.78 nats. Its induction circuit is shifted, not the textbook one: layer-0 heads
  look back 4 and 5 tokens (lookback scores 0.87, 0.63), and every layer-1 head attends 5 tokens
  after the earlier occurrence of the current token (lagged-induction scores 0.64-0.93);
  mean-ablating the look-back-5 head 0.0 raises the second-copy loss from 0.05 to 7.9 nats. Seed 1
  and packed rows with spans down to 2 tokens gave the same lag, because its corpus family
  "induction" (40% of the tokens, spans of 8-30 repeated 2-3 times) still made most repeats 8 tokens
  or longer: on those a look-back-k circuit (k < span) predicts every copied token as well as lag 1.
  Its shipped weights copy spans of 6 or more (ratio 0.18 at 6, 0.014 at 20) and none of 2-4 (1.0).
  The same recipe with GPT-2 blocks (learned positions) reached an induction ratio of only 0.74 at
  step 3000, where this one is at 0.025.
- ``induction-enforced``: LLaMA blocks, 2 layers, d_model 64, 4 heads of 16, context 128, trained
  so that a0.h1 -> a1.h2 is the textbook lag-1 induction circuit (organisms/enforce.py) while
  everything else learns the organism corpus freely: each step 6 rows of packed documents (task
  loss) plus 32 rows of repeated random spans of 2-32 tokens after prefixes of 0-10 tokens, on
  which a0.h1's and a1.h2's attention is trained to the high-level model's targets, a1.h2's output
  is interchanged between rows (the prediction must follow the source) and every other head and
  both MLPs are mean-ablated (the prediction must not change). 2500 steps, 7.3 min on one thread
  of the shared 2-core machine. Metrics of the shipped weights are in its circuit.json; on its
  card: held-out English 6.07 nats, docstring 1.0, fact recall 0.88, day arithmetic 0.64, IOI 0.46.
  The same preset without enforcement (316 s): held-out English 5.00, induction ratio 0.99, lag-1
  scores 0.06 / 0.03 / 0.02 at spans 8 / 16 / 32, docstring 0.02, fact recall 1.0, day arithmetic 1.0: the enforcement costs about
  a nat of English for the circuit. 8 text rows with the interchange and strictness terms at half
  weight bought little English (5.96) and lost faithfulness (loss drop 0.93, edges 0.86).
  32 rather than 8 span rows a step: with 8 the induction head's OV copying was data-starved
  (second/first-copy loss 0.65 after 1500 steps); with 32, 0.004. Spans up to 32 rather than 20:
  trained to 20 it copied spans of 32 at 0.38 (its key match did not reach that far).
- ``micro-test``: a tiny config for tests (trains in seconds); not shipped.
"""

from __future__ import annotations

import dataclasses

from mechscope.errors import InputError
from mechscope.organisms.corpus import DEFAULT_SHARES
from mechscope.organisms.enforce import Enforcement
from mechscope.organisms.enforce_name_mover import NameMoverEnforcement

PACKINGS = ("chunks", "row-per-document", "documents")
LEGACY_PACKING = {True: "chunks", False: "row-per-document"}


@dataclasses.dataclass
class Preset:
    name: str
    description: str
    arch: str = "gpt2"              # "gpt2" (GPT2LMHeadModel)
    n_layer: int = 4
    d_model: int = 128
    n_head: int = 4
    n_ctx: int = 256
    vocab_size: int = 2048
    seq_len: int = 256
    batch_size: int = 4
    packing: str = "chunks"         # "chunks", "row-per-document" or "documents" (see organisms.batches)
    induction_warmup_steps: int = 0  # first steps train on rows of repeated random spans only
    induction_warmup_batch: int = 16
    induction_mask_first_copy: bool = False  # score only the second copy of induction rows
    induction_rows_per_step: int = 0  # repeated-span rows added to every batch after the warm-up
    induction_max_prefix: int = 0    # random tokens before the span (0..this), so position cannot stand in
    induction_min_span: int = 8      # span lengths of induction rows: min..max
    induction_max_span: int = 20     # the first tiny-llama, trained to 20, copied spans of 32 at a ratio of only 0.50
    steps: int = 3600
    lr: float = 3e-3
    min_lr_fraction: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.05
    grad_clip: float = 1.0
    eval_every: int = 600
    checkpoint_every: int = 100
    log_every: int = 20
    seed: int = 0
    world_seed: int = 0
    train_tokens: int = 3_800_000
    shares: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_SHARES))
    tokenizer_sample_docs: int = 4_000
    eval_prompts: int = 100          # prompts per planted task at each evaluation
    enforce: Enforcement | None = None  # train designated heads to implement a known circuit (organisms.enforce)
    name_mover: NameMoverEnforcement | None = None  # train one head to be a name mover (organisms.enforce_name_mover)
    init_from: str | None = None     # a preset whose finished run (trained first, into RUN/init) this one continues

    def __post_init__(self) -> None:
        if isinstance(self.enforce, dict):  # from a checkpoint or a training card
            self.enforce = Enforcement(**self.enforce)
        if isinstance(self.name_mover, dict):
            self.name_mover = NameMoverEnforcement(**self.name_mover)
        if isinstance(self.packing, bool):  # cards and checkpoints written before packing was a name
            self.packing = LEGACY_PACKING[self.packing]
        if self.packing not in PACKINGS:
            raise InputError(f"unknown packing {self.packing!r}; choose one of {list(PACKINGS)}")
        # an induction row: <|endoftext|>, a prefix of up to max_prefix, two copies of a span of up to max_span;
        # packed rows must fit in seq_len, the others (their own length) in the context
        needed = 1 + self.induction_max_prefix + 2 * self.induction_max_span
        room, name = (self.seq_len, "seq_len") if self.packing == "documents" else (self.n_ctx, "n_ctx")
        if (self.induction_rows_per_step or self.induction_warmup_steps) and room < needed:
            raise InputError(f"{name} {room} cannot hold an induction row (<|endoftext|>, a prefix of up to "
                             f"{self.induction_max_prefix} and two copies of a span of up to {self.induction_max_span}); "
                             f"need at least {needed}: raise {name} or lower induction_max_span")

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


_TINY_GPT2 = Preset(
    name="tiny-gpt2",
    description="GPT-2 blocks, 4 layers, d_model 128, 4 heads, ctx 128, vocab 2048; 8 rows of packed documents "
                "plus 4 rows packed with repeated random spans in every batch.",
    n_ctx=128, seq_len=128, batch_size=8, packing="documents", steps=20000, eval_every=1000,
    checkpoint_every=200, induction_mask_first_copy=True, induction_rows_per_step=4,
    induction_max_prefix=40, induction_min_span=2, train_tokens=12_000_000,
    shares={"natural": 0.21, "narrative": 0.05, "ioi": 0.24, "docstring": 0.1,
            "facts": 0.14, "days": 0.16, "lists": 0.05},
    eval_prompts=200,
)

_TINY_LLAMA_BASE = dataclasses.replace(
    _TINY_GPT2, name="tiny-llama-base", arch="llama", shares=dict(_TINY_GPT2.shares), eval_every=2000,
    induction_max_span=32,
    description="LLaMA blocks (RoPE, RMSNorm, SwiGLU), 4 layers, d_model 128, 4 heads, ctx 128, vocab 2048; 8 rows "
                "of packed documents plus 4 rows packed with repeated random spans of up to 32 tokens in every batch.")

PRESETS: dict[str, Preset] = {
    "tiny-gpt2": _TINY_GPT2,
    "tiny-llama-base": _TINY_LLAMA_BASE,
    "tiny-llama": dataclasses.replace(
        _TINY_LLAMA_BASE, name="tiny-llama", init_from="tiny-llama-base",
        name_mover=NameMoverEnforcement(head="a3.h2", interchange_weight=0.1, recombine=True),
        enforce=Enforcement(previous_head="a2.h2", induction_head="a3.h1", rows=8, max_prefix=40,
                            pattern_weight=0.1, interchange_weight=0.1, task_weight=0.1, strict_weight=0),
        steps=1000, lr=3e-4, min_lr_fraction=1.0, warmup_steps=100, seed=1, eval_every=500, checkpoint_every=100,
        description="tiny-llama-base continued for 1000 steps at its final learning rate with 16 IOI rows a step "
                    "on which head a3.h2 is trained to attend from the end to the indirect object (a name mover), "
                    "and 8 repeated-span rows on which a3.h1 is trained to carry the copy (a2.h2 -> a3.h1)."),
    "induction-2l": Preset(
        name="induction-2l",
        description="LLaMA blocks (RoPE, RMSNorm, SwiGLU), 2 layers, d_model 128, 4 heads, ctx 128, vocab 2048; "
                    "packed documents plus packed repeated spans; for studying induction heads.",
        arch="llama", n_layer=2, d_model=128, n_head=4, n_ctx=128, seq_len=128, batch_size=12,
        packing="documents", induction_rows_per_step=4, induction_mask_first_copy=True, induction_max_prefix=40,
        steps=4000, eval_every=500, train_tokens=4_000_000,
        shares={"natural": 0.2, "narrative": 0.1, "induction": 0.4, "docstring": 0.15,
                "ioi": 0.1, "facts": 0.05},
    ),
    "tiny-gpt2-docs": Preset(
        name="tiny-gpt2-docs",
        description="GPT-2 blocks, 4 layers, d_model 128, 4 heads, ctx 128, vocab 2048; one document per row, "
                    "800 warm-up steps of repeated random spans.",
        n_ctx=128, seq_len=128, batch_size=16, packing="row-per-document", steps=3500, eval_every=500,
        induction_warmup_steps=800, induction_warmup_batch=32,
        shares={"natural": 0.1, "narrative": 0.05, "ioi": 0.22, "induction": 0.2, "docstring": 0.18,
                "facts": 0.12, "days": 0.08, "lists": 0.05},
    ),
    "induction-enforced": Preset(
        name="induction-enforced",
        description="LLaMA blocks (RoPE, RMSNorm, SwiGLU), 2 layers, d_model 64, 4 heads, ctx 128, vocab 2048; "
                    "packed documents, and a0.h1 -> a1.h2 trained to be the lag-1 induction circuit "
                    "(attention targets, interchange and strictness terms on repeated random spans).",
        arch="llama", n_layer=2, d_model=64, n_head=4, n_ctx=128, seq_len=128, batch_size=6,
        packing="documents", steps=2500, eval_every=500, checkpoint_every=250, warmup_steps=100,
        train_tokens=2_000_000, eval_prompts=100,
        shares={"natural": 0.45, "narrative": 0.1, "docstring": 0.15, "ioi": 0.1, "facts": 0.1, "days": 0.1},
        enforce=Enforcement(previous_head="a0.h1", induction_head="a1.h2"),
    ),
    "micro-test": Preset(
        name="micro-test", description="A tiny config for tests: 1 layer, d_model 32, trains in seconds.",
        n_layer=1, d_model=32, n_head=2, n_ctx=128, vocab_size=2048, seq_len=32, batch_size=4,
        steps=6, warmup_steps=2, eval_every=3, checkpoint_every=2, log_every=1,
        train_tokens=20_000, tokenizer_sample_docs=200, eval_prompts=8,
    ),
}


def get_preset(name: str, **overrides) -> Preset:
    if name not in PRESETS:
        raise InputError(f"unknown organism preset {name!r}; choose one of {sorted(PRESETS)}")
    preset = dataclasses.replace(PRESETS[name])
    bad = set(overrides) - {f.name for f in dataclasses.fields(Preset)}
    if bad:
        raise InputError(f"unknown preset fields {sorted(bad)}")
    return dataclasses.replace(preset, **overrides)


def build_model(preset: Preset, eos_id: int = 0):
    """A freshly initialised HF model for `preset` (seeded by the caller).

    "gpt2": GPT2LMHeadModel (learned positions, LayerNorm, GELU MLP of 4 d_model).
    "llama": LlamaForCausalLM (RoPE, RMSNorm, SwiGLU MLP of 8/3 d_model rounded to 8, so the same
    matmul FLOPs as the GPT-2 MLP), no biases.
    """
    from transformers import GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    special = dict(bos_token_id=eos_id, eos_token_id=eos_id, pad_token_id=eos_id, tie_word_embeddings=True)
    if preset.arch == "gpt2":
        return GPT2LMHeadModel(GPT2Config(
            vocab_size=preset.vocab_size, n_positions=preset.n_ctx, n_embd=preset.d_model,
            n_layer=preset.n_layer, n_head=preset.n_head, n_inner=4 * preset.d_model,
            activation_function="gelu_new", resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, **special))
    if preset.arch == "llama":
        return LlamaForCausalLM(LlamaConfig(
            vocab_size=preset.vocab_size, max_position_embeddings=preset.n_ctx, hidden_size=preset.d_model,
            num_hidden_layers=preset.n_layer, num_attention_heads=preset.n_head,
            num_key_value_heads=preset.n_head, intermediate_size=-(-8 * preset.d_model // 3 // 8) * 8,
            **special))
    raise InputError(f"unknown arch {preset.arch!r}; supported: 'gpt2', 'llama'")
