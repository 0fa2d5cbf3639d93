"""Train an organism: data preparation, the training loop, checkpoints, evaluation, export.

Resuming: the batch at step t is a pure function of (seed, t) (a seeded permutation of the
fixed-length chunks per epoch), the learning rate is a pure function of t, and the checkpoint
stores model, optimizer, torch RNG and history; so a run killed at any point and resumed from its
last checkpoint ends with the same weights as an uninterrupted run (same machine, same threads).

Run directory layout (`out`):
    data/         tokens.npy, heldout.npy, tokenizer files, ground_truth.json, corpus.json
    checkpoint.pt the latest checkpoint (atomic)
    log.jsonl     one line per log interval / evaluation
    final/        the finished organism: an HF checkpoint dir + ground_truth.json,
                  training_card.json, loss_curve.json (plotly figure)
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from mechscope.errors import CheckpointError
from mechscope.io import atomic_path, write_json_atomic
from mechscope.organisms.batches import (
    PackedDocuments,
    batch_for_step,
    document_batch,
    document_bounds,
    induction_batch,
    induction_labels,
    join_rows,
    packed_induction_rows,
)
from mechscope.organisms.card import make_card, write_card
from mechscope.organisms.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from mechscope.organisms.corpus import CorpusConfig, build_corpus, text_files
from mechscope.organisms.enforce import (
    Enforcement,
    Taps,
    enforcement_losses,
    enforcement_rows,
    total_enforcement_loss,
)
from mechscope.organisms.enforce_name_mover import (
    NameMoverEnforcement,
    name_mover_losses,
    name_mover_rows,
    total_name_mover_loss,
)
from mechscope.organisms.enforced_circuit import write_enforced_circuit
from mechscope.organisms.evaluate import evaluate
from mechscope.organisms.flops import matmul_peak_flops, training_flops_per_token
from mechscope.organisms.presets import LEGACY_PACKING, Preset, build_model, get_preset
from mechscope.organisms.tokenizer import load_tokenizer, save_tokenizer
from mechscope.organisms.world import GroundTruth, load_ground_truth, make_world
from mechscope.progress import progress
from mechscope.threads import torch_threads


@dataclasses.dataclass
class RunData:
    tokenizer: object
    ground_truth: GroundTruth
    train: np.ndarray      # [n_tokens] uint16
    heldout: np.ndarray    # [n_tokens] uint16


def prepare_data(out: Path, preset: Preset, text_paths: list[str]) -> RunData:
    """Build (or reload) the world, tokenizer and token arrays under out/data; `text_paths` are
    natural-text files or folders of them."""
    data = out / "data"
    if (data / "corpus.json").is_file():
        return RunData(load_tokenizer(data), load_ground_truth(data / "ground_truth.json"),
                       np.load(data / "tokens.npy"), np.load(data / "heldout.npy"))
    world = make_world(preset.world_seed)
    cfg = CorpusConfig(train_tokens=preset.train_tokens, shares=dict(preset.shares),
                       natural_paths=text_files(text_paths), vocab_size=preset.vocab_size,
                       tokenizer_sample_docs=preset.tokenizer_sample_docs)
    corpus = build_corpus(world, cfg, seed=preset.world_seed)
    data.mkdir(parents=True, exist_ok=True)
    save_tokenizer(corpus.tokenizer, data)
    world = world.planted(corpus.family_tokens)
    world.save(data / "ground_truth.json")
    for name, arr in [("tokens.npy", corpus.train), ("heldout.npy", corpus.heldout_natural)]:
        with atomic_path(data / name) as tmp, open(tmp, "wb") as f:
            np.save(f, arr)
    write_json_atomic(data / "corpus.json", {"config": cfg, "family_tokens": corpus.family_tokens,
                                             "train_tokens": len(corpus.train)})
    return RunData(corpus.tokenizer, world, corpus.train, corpus.heldout_natural)


def data_home(out: Path, preset: Preset) -> Path:
    """The run directory whose data/ a run in `out` trains on: its own, or for a continuation
    (`Preset.init_from`) that of the run it continues, in out/init (the same corpus and tokenizer)."""
    while preset.init_from:
        out, preset = out / "init", get_preset(preset.init_from)
    return out


def _final_weights(final: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(final / "model.safetensors")


def lr_at(step: int, p: Preset) -> float:
    """Linear warmup then cosine decay to min_lr_fraction * lr."""
    if step < p.warmup_steps:
        return p.lr * (step + 1) / p.warmup_steps
    frac = (step - p.warmup_steps) / max(1, p.steps - p.warmup_steps)
    return p.lr * (p.min_lr_fraction + (1 - p.min_lr_fraction) * 0.5 * (1 + math.cos(math.pi * min(frac, 1.0))))


def make_optimizer(model, p: Preset, implementation: str = "default") -> torch.optim.Optimizer:
    """AdamW, weight decay on matrices only. `implementation`: "default" (torch's choice), "foreach"
    or "fused" (one kernel over all tensors; bench/bench_training.py times them)."""
    decay = [w for n, w in model.named_parameters() if w.dim() >= 2]
    no_decay = [w for n, w in model.named_parameters() if w.dim() < 2]
    kw = {"default": {}, "foreach": {"foreach": True}, "fused": {"fused": True}}[implementation]
    return torch.optim.AdamW([{"params": decay, "weight_decay": p.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=p.lr, betas=(0.9, 0.95), **kw)


def optimizer_step(model, opt: torch.optim.Optimizer, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward, clip the gradient norm, step, clear gradients: one training update."""
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)


def _training_fields(preset: dict) -> dict:
    """The preset fields that change training (everything but the prose); fields added to Preset
    after a checkpoint was written take their defaults, which reproduce the older behaviour."""
    defaults = {f.name: f.default for f in dataclasses.fields(Preset) if f.default is not dataclasses.MISSING}
    fields = {k: v for k, v in {**defaults, **preset}.items() if k not in {"name", "description"}}
    fields["packing"] = LEGACY_PACKING.get(fields["packing"], fields["packing"])
    for key, config in (("enforce", Enforcement), ("name_mover", NameMoverEnforcement)):
        if isinstance(fields[key], dict):        # the same for the fields of an enforcement config
            fields[key] = dataclasses.asdict(config(**fields[key]))
        elif fields[key] is not None:
            fields[key] = dataclasses.asdict(fields[key])
    return fields


def _log(out: Path, record: dict) -> None:
    with open(out / "log.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def train(preset: Preset, out: str | Path, text_paths: list[str] = (), *, threads: int | None = None,
          stop_after: int | None = None, show_progress: bool | None = None,
          on_eval: Callable[[int, dict], None] | None = None) -> Path | None:
    """Train (or resume) `preset` in `out`; return out/final when finished.

    `stop_after` ends this call after that many total steps without a final checkpoint, as a kill
    would (returns None); calling again resumes from the last checkpoint. `threads`: torch threads
    for this call only (the process's count is restored on return).
    """
    with torch_threads(threads):
        return _train(preset, Path(out), list(text_paths), stop_after, show_progress, on_eval)


def _train(preset: Preset, out: Path, text_paths: list[str], stop_after: int | None, show_progress: bool | None,
           on_eval: Callable[[int, dict], None] | None) -> Path | None:
    out.mkdir(parents=True, exist_ok=True)
    init = None
    if preset.init_from:    # the run this one continues, trained (or resumed, or found finished) first
        init = _train(get_preset(preset.init_from), out / "init", text_paths, None, show_progress, None)
    run = prepare_data(data_home(out, preset), preset, list(text_paths))
    eos = run.tokenizer.bos_token_id
    torch.manual_seed(preset.seed)
    model = build_model(preset, eos)
    if init:
        missing, unexpected = model.load_state_dict(_final_weights(init), strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:      # the tied unembedding is not stored
            raise CheckpointError(f"{init} does not hold {preset.name}'s architecture (missing {missing}, "
                                  f"unexpected {unexpected}); its init_from preset must share it")
        model.tie_weights()
    taps = None
    if preset.enforce or preset.name_mover:
        model.set_attn_implementation("eager")   # the pattern terms read attention weights
        taps = Taps(model)
    opt = make_optimizer(model, preset)
    step, history = 0, {"loss": [], "evals": [], "train_seconds": 0.0, "peak_flops": []}
    ckpt_path = out / CHECKPOINT_NAME
    if ckpt_path.exists():
        state = load_checkpoint(ckpt_path)
        if _training_fields(json.loads(state["preset"])) != _training_fields(preset.to_dict()):
            raise CheckpointError(f"{ckpt_path} was written for another preset/config; use a new --out "
                                  "directory or delete the checkpoint")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        torch.set_rng_state(state["torch_rng"])
        step, history = int(state["step"]), state["history"]
        if step >= preset.steps and (out / "final" / "training_card.json").is_file():
            return out / "final"          # finished and exported before (the run a continuation starts from)
    history["peak_flops"].append(matmul_peak_flops())
    flops_per_token = training_flops_per_token(preset.n_layer, preset.d_model, 4 * preset.d_model,
                                               preset.vocab_size, preset.seq_len)

    def checkpoint() -> None:
        save_checkpoint(ckpt_path, {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": step,
                                    "torch_rng": torch.get_rng_state(), "history": history,
                                    "preset": json.dumps(preset.to_dict(), sort_keys=True)})

    def run_eval() -> None:
        metrics = evaluate(model, run.tokenizer, run.ground_truth, run.heldout, preset.seq_len,
                           preset.eval_prompts)
        history["evals"].append({"step": step, **metrics})
        _log(out, {"step": step, "eval": metrics})
        if on_eval:
            on_eval(step, metrics)

    model.train()
    bar = progress(total=preset.steps, initial=step, desc=f"train {preset.name}", enabled=show_progress)
    recent: list[float] = []
    recent_tokens: list[int] = []
    bounds = document_bounds(run.train, eos)
    packed_documents = PackedDocuments(run.train, bounds, preset.batch_size, preset.seq_len, preset.seed, eos)
    while step < preset.steps:
        if stop_after is not None and step >= stop_after:
            bar.close()
            return None
        t0 = time.perf_counter()
        for group in opt.param_groups:
            group["lr"] = lr_at(step, preset)
        if step < preset.induction_warmup_steps:
            x, n_prefix = induction_batch(step, preset.induction_warmup_batch, preset.vocab_size, preset.seed,
                                          eos, max_prefix=preset.induction_max_prefix,
                                          min_span=preset.induction_min_span,
                                          max_span=preset.induction_max_span)
            loss = model(input_ids=x, labels=induction_labels(x, preset.induction_mask_first_copy, n_prefix)).loss
        elif preset.packing == "chunks":
            x = batch_for_step(run.train, step, preset.batch_size, preset.seq_len, preset.seed)
            loss = model(input_ids=x, labels=x).loss
        elif preset.packing == "documents":
            x, labels, positions = packed_documents.batch(step)
            if preset.induction_rows_per_step:
                rows = packed_induction_rows(step, preset.induction_rows_per_step, preset.seq_len,
                                             preset.vocab_size, preset.seed, eos, preset.induction_max_prefix,
                                             preset.induction_mask_first_copy, min_span=preset.induction_min_span,
                                             max_span=preset.induction_max_span)
                x, labels, positions = (torch.cat(pair) for pair in zip((x, labels, positions), rows, strict=True))
            # no KV cache: HF reads restarting position_ids as packed sequences only without one
            loss = model(input_ids=x, labels=labels, position_ids=positions, use_cache=False).loss
        else:
            parts = [document_batch(run.train, bounds, step, preset.batch_size, preset.seq_len,
                                    preset.seed, eos)]
            if preset.induction_rows_per_step:
                rows, n_prefix = induction_batch(step, preset.induction_rows_per_step, preset.vocab_size,
                                                 preset.seed, eos, stream=8, max_prefix=preset.induction_max_prefix,
                                                 min_span=preset.induction_min_span,
                                                 max_span=preset.induction_max_span)
                parts.append((rows, induction_labels(rows, preset.induction_mask_first_copy, n_prefix),
                              torch.ones_like(rows)))
            x, labels, mask = join_rows(parts, eos)
            loss = model(input_ids=x, labels=labels, attention_mask=mask).loss
        enforced = {}
        if preset.enforce:
            rows = enforcement_rows(step, preset.enforce, preset.vocab_size, preset.seed, eos)
            parts = enforcement_losses(model, rows, preset.enforce, taps)
            loss = loss + total_enforcement_loss(parts, preset.enforce)
            enforced["enforce"] = {k: round(v.item(), 4) for k, v in parts.items()}
        if preset.name_mover:
            rows = name_mover_rows(step, preset.name_mover, run.tokenizer, run.ground_truth, preset.seed, eos)
            parts = name_mover_losses(model, rows, preset.name_mover, taps)
            loss = loss + total_name_mover_loss(parts, preset.name_mover)
            enforced["name_mover"] = {k: round(v.item(), 4) for k, v in parts.items()}
        optimizer_step(model, opt, loss, preset.grad_clip)
        step += 1
        dt = time.perf_counter() - t0
        history["train_seconds"] += dt
        history["loss"].append(loss.item())
        recent.append(dt)
        history["tokens"] = history.get("tokens", 0) + x.numel()
        recent_tokens.append(x.numel())
        tok_s = sum(recent_tokens) / sum(recent)
        bar.update(1)
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", tok_s=f"{tok_s:.0f}")
        if step % preset.log_every == 0:
            record = {"step": step, "loss": history["loss"][-1], "lr": lr_at(step - 1, preset), "tokens_per_s": tok_s,
                      "flops_per_s": tok_s * flops_per_token}
            record.update(enforced)
            _log(out, record)
            recent, recent_tokens = [], []
        if step % preset.eval_every == 0 or step == preset.steps:
            run_eval()
        if step % preset.checkpoint_every == 0 or step == preset.steps:
            checkpoint()
    bar.close()
    history["peak_flops"].append(matmul_peak_flops())
    return export(out, model, run, preset, history, flops_per_token)


def export(out: Path, model, run: RunData, preset: Preset, history: dict, flops_per_token: float) -> Path:
    """Write out/final: an HF checkpoint dir with tokenizer, ground truth and training card."""
    final = out / "final"
    final.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(final, safe_serialization=True)
    save_tokenizer(run.tokenizer, final)
    run.ground_truth.save(final / "ground_truth.json")
    corpus = json.loads((data_home(out, preset) / "data" / "corpus.json").read_text())
    card = make_card(preset, history, flops_per_token, corpus, torch.get_num_threads(),
                     n_params=sum(p.numel() for p in model.parameters()))
    if preset.init_from:      # what the continued run was, beside what this one did
        init_card = json.loads((out / "init" / "final" / "training_card.json").read_text())
        card["init"] = {k: init_card[k] for k in ("name", "steps", "tokens_seen", "train_seconds", "fraction_of_peak",
                                                  "threads", "final_metrics")}
    write_card(final, card)
    if preset.enforce and preset.enforce.strict_weight > 0:
        # Strictness trained every other head and MLP out of the copy, so the enforced circuit is the
        # organism's whole induction circuit (circuit.json). Without it the heads are trained to a role
        # beside others that may copy too (tiny-llama: a3.h3 backs a3.h1 up), which mechanisms.json measures.
        write_enforced_circuit(final, preset.name, preset.enforce)
    for path in final.iterdir():  # temp-file writes are private (0600); these files get shipped
        path.chmod(0o644)
    return final


def export_checkpoint(out: str | Path) -> Path:
    """Write out/final from the latest checkpoint of a run (finished or not).

    The training card then records how many of the preset's steps were done.
    """
    from mechscope.organisms.presets import Preset

    out = Path(out)
    state = load_checkpoint(out / CHECKPOINT_NAME)
    preset = Preset(**json.loads(state["preset"]))
    run = prepare_data(data_home(out, preset), preset, [])
    model = build_model(preset, run.tokenizer.bos_token_id)
    model.load_state_dict(state["model"])
    flops_per_token = training_flops_per_token(preset.n_layer, preset.d_model, 4 * preset.d_model,
                                               preset.vocab_size, preset.seq_len)
    return export(out, model, run, preset, state["history"], flops_per_token)
