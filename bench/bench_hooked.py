"""Hooked-model overhead: caching every / a few hook points vs the plain HF forward, and vs TransformerLens.

Work: a GPT-2-small-size model (12 layers, d_model 768, random weights), batch 8 x 128 tokens, CPU.
Targets (issue 2): cache everything <= 1.10x plain HF; a handful of names <= 1.02x; no-hook forward
costs nothing. TransformerLens (when installed: `pip install -e .[bench]`) runs the same weights.

    python bench/bench_hooked.py [--quick]      -> bench/results/hooked.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import interleaved, write  # noqa: E402
from mechscope import HookedModel  # noqa: E402


class _NoTokenizer:
    bos_token_id = None
    pad_token_id = eos_token_id = 0


def gpt2_small(n_layers: int, d_model: int, n_ctx: int = 1024, n_heads: int | None = None):
    """Random GPT-2 weights (seed 0); n_heads defaults to d_model / 64, as GPT-2's."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    return GPT2LMHeadModel(GPT2Config(n_layer=n_layers, n_embd=d_model, n_head=n_heads or d_model // 64,
                                      n_positions=n_ctx, vocab_size=50257)).eval()


def transformer_lens_twin(hf_model):
    """The same weights as a TransformerLens HookedTransformer (None when TL is not installed)."""
    try:
        from transformer_lens import HookedTransformer, HookedTransformerConfig
        from transformer_lens.pretrained.weight_conversions import convert_gpt2_weights
    except ImportError:
        return None
    c = hf_model.config
    cfg = HookedTransformerConfig(n_layers=c.n_layer, d_model=c.n_embd, d_head=c.n_embd // c.n_head,
                                  n_heads=c.n_head, d_mlp=4 * c.n_embd, d_vocab=c.vocab_size, n_ctx=c.n_positions,
                                  act_fn="gelu_new", normalization_type="LN", device="cpu")
    model = HookedTransformer(cfg)
    model.load_state_dict(convert_gpt2_weights(hf_model, cfg), strict=False)
    return model.eval()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="4 layers, batch 2: a smoke run")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n_layers, batch, seq = (4, 2, 64) if args.quick else (12, 8, 128)
    hf = gpt2_small(n_layers, 768)
    model = HookedModel.from_hf(hf, _NoTokenizer())
    tokens = torch.randint(0, 50257, (batch, seq), generator=torch.Generator().manual_seed(0))
    few = [f"blocks.{n_layers // 2}.hook_resid_post", f"blocks.{n_layers - 1}.hook_resid_post",
           f"blocks.{n_layers // 2}.hook_mlp_out", "ln_final.hook_normalized"]
    sizes = {}

    def cache_all():
        _, cache = model.run_with_cache(tokens)
        sizes["all"] = sum(t.numel() * t.element_size() for t in cache.values())

    def cache_few():
        _, cache = model.run_with_cache(tokens, names=few)
        sizes["few"] = sum(t.numel() * t.element_size() for t in cache.values())

    contenders = {
        "hf_plain": lambda: hf(input_ids=tokens),
        "mechscope_forward": lambda: model(tokens),
        "mechscope_cache_few": cache_few,
        "mechscope_cache_all": cache_all,
    }
    tl = transformer_lens_twin(hf)
    if tl is not None:
        contenders["transformer_lens_forward"] = lambda: tl(tokens)
        contenders["transformer_lens_cache_all"] = lambda: tl.run_with_cache(tokens)
    with torch.no_grad():
        timings = interleaved(contenders, repeats=args.repeats)
    base = timings["hf_plain"]["median_s"]
    ratios = {k: v["median_s"] / base for k, v in timings.items()}
    targets = {"mechscope_cache_all": 1.10, "mechscope_cache_few": 1.02, "mechscope_forward": 1.02}
    path = write("hooked", {
        "work": {"n_layers": n_layers, "d_model": 768, "batch": batch, "seq": seq},
        "timings": timings, "ratio_vs_hf_plain": ratios, "targets": targets,
        "met": {k: ratios[k] <= t for k, t in targets.items()},
        "cache_bytes": sizes, "transformer_lens": tl is not None,
    })
    for k, r in ratios.items():
        print(f"{k:32s} {timings[k]['median_s'] * 1e3:9.1f} ms   {r:5.2f}x plain HF")
    print(f"cache bytes: all {sizes.get('all', 0) / 2**20:.0f} MiB, few {sizes.get('few', 0) / 2**20:.1f} MiB -> {path}")


if __name__ == "__main__":
    main()
