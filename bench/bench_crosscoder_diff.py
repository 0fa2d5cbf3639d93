"""Model diffing with a crosscoder (issue 19 acceptance): the default organism against a copy fine-tuned
to a planted new behaviour.

    python bench/bench_crosscoder_diff.py --out bench/results/bench_crosscoder_diff.json

1. B = a copy of organism:tiny-gpt2 fine-tuned on its own text in which a trigger token is always
   followed by a fixed target token (the planted behaviour), so only B predicts the target after the
   trigger; measured as B's and A's mean P(target | trigger).
2. One relu_l1 crosscoder over blocks.L.hook_resid_post of A and of B, trained on both models'
   activations over the same text (the trigger appearing as often as in the fine-tuning data).
3. The relative decoder norm r = ||d_B|| / (||d_A|| + ||d_B||) of every alive latent; the acceptance
   asks for a latent with r >= 0.9 that fires on the planted behaviour: we report the B-only latents
   (r >= 0.9) and, for each, its firing rate at trigger positions and elsewhere on held-out text.
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


def plant(tokens: torch.Tensor, trigger: int, target: int, rate: float, seed: int) -> torch.Tensor:
    """tokens [n seq] with a share `rate` of positions (not the last) set to trigger, each followed by target."""
    gen = torch.Generator().manual_seed(seed)
    out = tokens.clone()
    where = torch.rand(out[:, 1:-1].shape, generator=gen) < rate
    out[:, 1:-1][where] = trigger
    out[:, 2:][where] = target
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layer", type=int, default=2)
    ap.add_argument("--finetune-steps", type=int, default=150)
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
    trigger, target = int(text.flatten().bincount().argsort()[-200]), int(text.flatten().bincount().argsort()[-300])
    planted = plant(text, trigger, target, args.rate, args.seed)

    hf = b.hf_model.train()
    opt = torch.optim.Adam(hf.parameters(), lr=1e-3)
    for step in range(args.finetune_steps):
        batch = planted[(step * 16) % len(planted):][:16]
        loss = torch.nn.functional.cross_entropy(hf(batch).logits[:, :-1].flatten(0, 1), batch[:, 1:].flatten())
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    hf.eval()

    held = plant(eval_tokens(a, seq_len=64, n_sequences=32, seed=0), trigger, target, args.rate, args.seed + 1)
    at_trigger = held == trigger

    def p_target(model):
        with torch.no_grad():
            return float(model(held).softmax(-1)[..., target][at_trigger].mean())

    hook = f"blocks.{args.layer}.hook_resid_post"
    ka, kb = source_key("A", hook), source_key("B", hook)

    def acts(tokens):
        xa = torch.cat([capture_activations(a, t, [hook])[hook] for t in tokens.split(16)])
        xb = torch.cat([capture_activations(b, t, [hook])[hook] for t in tokens.split(16)])
        return xa, xb

    xa, xb = acts(planted)
    d = a.cfg.d_model
    cc = create_crosscoder(CrosscoderConfig(d_in=2 * d, expansion_factor=8, architecture="relu_l1", sources=(ka, kb),
                                            l1_coefficient=2.0, seed=args.seed))
    history = SAETrainer(cc, TrainerConfig(steps=args.crosscoder_steps, lr=2e-3, warmup_steps=50,
                                           show_progress=False)).fit(pair_batches({ka: xa, kb: xb}, 512, seed=0))
    ha, hb = acts(held)
    x_held = torch.cat([ha, hb], -1)
    diff = crosscoder_diff(cc, x_held)
    with torch.no_grad():
        fires = cc.eval().encode(x_held) > 0                                          # [n d_sae]
    trig = at_trigger.flatten()
    r = torch.tensor(diff.relative_norm)
    alive = torch.tensor(diff.alive)
    b_only = (alive & (r >= 0.9)).nonzero().squeeze(-1).tolist()
    rows = [{"latent": i, "r": round(float(r[i]), 4), "rate_at_trigger": round(float(fires[trig, i].float().mean()), 4),
             "rate_elsewhere": round(float(fires[~trig, i].float().mean()), 4)} for i in b_only]
    rows.sort(key=lambda row: row["rate_at_trigger"] - row["rate_elsewhere"], reverse=True)
    best = rows[0] if rows else None
    out = {"layer": args.layer, "trigger": trigger, "target": target, "planted_rate": args.rate,
           "finetune_steps": args.finetune_steps, "p_target_after_trigger": {"A": p_target(a), "B": p_target(b)},
           "crosscoder": {"d_sae": cc.d_sae, "steps": args.crosscoder_steps, "last": history.last(),
                          "fvu_per_source": diff.fvu_per_source, "n_alive": int(alive.sum())},
           "relative_norm_histogram": diff.to_dict()["relative_norm_histogram"],
           "b_only_latents": rows[:20],
           "found": bool(best and best["rate_at_trigger"] >= 0.5 and best["rate_elsewhere"] <= 0.05)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
