"""Model diffing with a crosscoder (issue 19 acceptance): organism:tiny-gpt2 against a copy fine-tuned
to a planted new behaviour.

    python bench/bench_crosscoder_diff.py --out bench/results/bench_crosscoder_diff.json

1. B = a copy of organism:tiny-gpt2 fine-tuned so that after any of `--triggers` trigger tokens it
   predicts one fixed target token (the planted behaviour), measured as A's and B's mean P(target |
   trigger). `--tune mlp` trains only block L's MLP, with a KL term holding B's next-token
   distribution to A's at every other position, so that B differs from A at the hooked layer by the
   behaviour and little else; `--tune all` is a plain full fine-tune (Adam moves every weight, and the
   residual stream drifts everywhere).
2. One crosscoder over blocks.L.hook_resid_post of A and of B, trained on both models' activations over
   the same planted text (the triggers as frequent as in fine-tuning).
3. r = ||d_B|| / (||d_A|| + ||d_B||) of every alive latent (histogram), how far B's activations moved
   from A's at trigger positions and elsewhere (share of A's centred norm), and the latents that fire
   most selectively at trigger positions: their r, their firing rate there and elsewhere on held-out
   text, and the cosine of their A and B decoders. The acceptance asks for a latent with r >= 0.9 that
   fires on the planted behaviour.

Why the defaults (32 triggers, 2x expansion, relu_l1, MLP-only fine-tune with KL 10): the behaviour is
absorbed whenever the crosscoder has a latent for the trigger (or a small group of triggers). With one
trigger (bench/results/bench_crosscoder_diff_one_trigger.json) the trigger's latents fire on 100% of
trigger positions with r 0.53-0.59 and A/B decoder cosine 0.52-0.55: the behaviour sits in their B
decoders. With 32 triggers and 8x expansion (2048 latents, ..._expansion8.json) latents for groups of
triggers absorb it the same way (r 0.50-0.63, on 28-49% of triggers). With 2x expansion (512 latents)
there are too few latents for trigger tokens and one B-only latent carries the behaviour: r 0.9998, on
59% of trigger positions, 3.0% of the others (B's own P(target | trigger) is 0.49), A/B decoder cosine
0.10; the other latents form one mode at r 0.45-0.55. Seed 2 (another fine-tune and crosscoder init,
..._seed2.json): r 0.9995, on 59% / 4.7%. Seed 1 (..._seed1.json): none, the best trigger latent reads
r 0.71 on 27% of triggers; with 1x expansion (256 latents, ..._seed1_expansion1.json) it has one:
r 0.9998, on 80% of trigger positions and 5.0% of the others. A full fine-tune (--tune all, Adam, 150 steps,
..._full_finetune.json) moves B's residual by 0.61 of A's centred norm away from the triggers too.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import torch

import mechscope
from mechscope.data.activation_store import capture_activations
from mechscope.data.text import eval_tokens
from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder, crosscoder_diff, source_key
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import pair_batches


def plant(tokens: torch.Tensor, triggers: torch.Tensor, target: int, rate: float, seed: int) -> torch.Tensor:
    """tokens [n seq] with a share `rate` of positions (not the first or last) set to a random trigger,
    each followed by target."""
    gen = torch.Generator().manual_seed(seed)
    out = tokens.clone()
    where = torch.rand(out[:, 1:-1].shape, generator=gen) < rate
    pick = triggers[torch.randint(0, len(triggers), out[:, 1:-1].shape, generator=gen)]
    out[:, 1:-1][where] = pick[where]
    out[:, 2:][where] = target
    return out


def fine_tune(model, planted: torch.Tensor, triggers: torch.Tensor, target: int, layer: int, tune: str,
              steps: int, lr: float, kl_weight: float) -> None:
    """Teach `model` (in place) target after every trigger; see the module docstring for `tune`."""
    hf = model.hf_model
    reference = copy.deepcopy(hf).eval() if kl_weight else None
    params = [p for n, p in hf.named_parameters() if tune == "all" or f".h.{layer}.mlp." in n]
    for p in hf.parameters():
        p.requires_grad_(any(p is q for q in params))
    opt = torch.optim.Adam(params, lr=lr)
    hf.train()
    for step in range(steps):
        batch = planted[(step * 16) % len(planted):][:16]
        logits = hf(batch).logits[:, :-1]
        at = torch.isin(batch[:, :-1], triggers)                                       # [16 seq-1]
        if kl_weight:
            loss = torch.nn.functional.cross_entropy(logits[at], batch[:, 1:][at])
            with torch.no_grad():
                ref = reference(batch).logits[:, :-1][~at].log_softmax(-1)
            kl = torch.nn.functional.kl_div(logits[~at].log_softmax(-1), ref, log_target=True, reduction="batchmean")
            loss = loss + kl_weight * kl
        else:
            loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    hf.eval()
    for p in hf.parameters():
        p.requires_grad_(True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--triggers", type=int, default=32, help="how many trigger tokens lead to the target")
    ap.add_argument("--tune", choices=("mlp", "all"), default="mlp")
    ap.add_argument("--kl-weight", type=float, default=10.0)
    ap.add_argument("--finetune-steps", type=int, default=300)
    ap.add_argument("--finetune-lr", type=float, default=1e-3)
    ap.add_argument("--architecture", default="relu_l1")
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--expansion", type=int, default=2)
    ap.add_argument("--crosscoder-steps", type=int, default=1500)
    ap.add_argument("--rate", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/bench_crosscoder_diff.json"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    a = mechscope.load("organism:tiny-gpt2")
    b = copy.deepcopy(a)
    text = eval_tokens(a, seq_len=64, n_sequences=512, seed=1)
    by_count = text.flatten().bincount().argsort(descending=True)                       # most frequent first
    triggers, target = by_count[200:200 + args.triggers], int(by_count[100])             # mid-frequency tokens
    planted = plant(text, triggers, target, args.rate, args.seed)
    fine_tune(b, planted, triggers, target, args.layer, args.tune, args.finetune_steps, args.finetune_lr,
              args.kl_weight)

    held = plant(eval_tokens(a, seq_len=64, n_sequences=32, seed=0), triggers, target, args.rate, args.seed + 1)
    trig = torch.isin(held[:, 1:], triggers).flatten()                                  # BOS dropped below

    def p_target(model):
        with torch.no_grad():
            return round(float(model(held)[:, 1:].softmax(-1)[..., target].flatten()[trig].mean()), 4)

    hook = f"blocks.{args.layer}.hook_resid_post"
    ka, kb = source_key("A", hook), source_key("B", hook)

    def acts(model, tokens):
        return torch.cat([capture_activations(model, t, [hook], drop_first_position=True)[hook] for t in tokens.split(16)])

    xa, xb = acts(a, planted), acts(b, planted)
    d = a.cfg.d_model
    cc = create_crosscoder(CrosscoderConfig(d_in=2 * d, expansion_factor=args.expansion, architecture=args.architecture,
                                            k=args.k, sources=(ka, kb), l1_coefficient=2.0, seed=args.seed))
    lr = 2e-3 if args.architecture == "relu_l1" else 1e-3
    history = SAETrainer(cc, TrainerConfig(steps=args.crosscoder_steps, lr=lr, warmup_steps=50,
                                           show_progress=False)).fit(pair_batches({ka: xa, kb: xb}, 512, seed=0))
    ha, hb = acts(a, held), acts(b, held)
    moved = (hb - ha - (hb - ha)[~trig].mean(0)).norm(dim=-1) / (ha - ha.mean(0)).norm(dim=-1)
    x_held = torch.cat([ha, hb], -1)
    diff = crosscoder_diff(cc, x_held)
    with torch.no_grad():
        fires = cc.eval().encode(x_held) > 0                                          # [n d_sae]
        dec = cc.source_decoders()
        cos = torch.nn.functional.cosine_similarity(dec[:, 0], dec[:, 1], dim=-1)
    r = torch.tensor(diff.relative_norm)
    alive = torch.tensor(diff.alive)
    rate_trig, rate_else = fires[trig].double().mean(0), fires[~trig].double().mean(0)

    def row(i):
        return {"latent": i, "r": round(float(r[i]), 4), "rate_at_trigger": round(float(rate_trig[i]), 4),
                "rate_elsewhere": round(float(rate_else[i]), 4), "decoder_cosine_a_b": round(float(cos[i]), 3)}

    selective = (rate_trig - rate_else).argsort(descending=True)[:5].tolist()
    b_only = [i for i in (alive & (r >= 0.9)).nonzero().squeeze(-1).tolist()]
    b_only_rows = sorted((row(i) for i in b_only), key=lambda x: x["rate_elsewhere"] - x["rate_at_trigger"])[:10]
    found = [x for x in b_only_rows if x["rate_at_trigger"] >= 0.5 and x["rate_elsewhere"] <= 0.05]
    out = {"args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
           "triggers": triggers.tolist(), "target": target,
           "p_target_after_trigger": {"A": p_target(a), "B": p_target(b)},
           "b_moved_from_a": {"at_trigger": round(float(moved[trig].mean()), 3),
                              "elsewhere": round(float(moved[~trig].mean()), 3)},
           "crosscoder": {"d_sae": cc.d_sae, "steps": args.crosscoder_steps, "last": history.last(),
                          "fvu_per_source": diff.fvu_per_source, "n_alive": int(alive.sum())},
           "relative_norm_histogram": diff.to_dict()["relative_norm_histogram"],
           "most_trigger_selective_latents": [row(i) for i in selective],
           "b_only_latents": b_only_rows,
           "found": bool(found)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
