"""Small models for circuit tests: random-init models of several architectures, and a GPT-2 made
exactly affine in its inputs (so first-order attributions are exact)."""

from __future__ import annotations

import torch

from mechscope import HookedModel
from mechscope.circuits.engine import CircuitSetup
from tests.helpers import gpt2_tokenizer, small_hf_model

VOCAB = 1000


def random_model(arch: str, seed: int = 0) -> HookedModel:
    return HookedModel.from_hf(small_hf_model(arch, seed=seed, vocab=VOCAB), gpt2_tokenizer(), spec=arch)


def linear_gpt2(seed: int = 0) -> HookedModel:
    """A float64 GPT-2 that is affine in its embeddings: zero query/key weights (uniform causal
    attention), a linear MLP activation, and LayerNorms whose eps is so large that they divide by
    the constant sqrt(eps) (weights rescaled by sqrt(eps)); the relative error of that is ~1e-14."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    eps = 1e16
    cfg = GPT2Config(n_layer=2, n_embd=32, n_head=4, n_positions=32, vocab_size=VOCAB,
                     activation_function="linear", layer_norm_epsilon=eps)
    hf = GPT2LMHeadModel(cfg).double().eval()
    with torch.no_grad():
        for block in hf.transformer.h:
            block.attn.c_attn.weight[:, : 2 * cfg.n_embd] = 0
            block.attn.c_attn.bias[: 2 * cfg.n_embd] = 0
            for ln in (block.ln_1, block.ln_2):
                ln.weight.normal_(1.0, 0.2).mul_(eps ** 0.5)
        hf.transformer.ln_f.weight.normal_(1.0, 0.2).mul_(eps ** 0.5)
        hf.transformer.wte.weight.normal_(0, 1.0)
    return HookedModel.from_hf(hf, gpt2_tokenizer(), spec="linear-gpt2")


def logit_diff(answer_logits, prompt_index):
    return answer_logits[:, 1] - answer_logits[:, 2]


def token_pairs(n: int = 6, pos: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    clean = torch.randint(3, VOCAB, (n, pos), generator=gen)
    corrupt = clean.clone()
    corrupt[:, : pos // 2] = torch.randint(3, VOCAB, (n, pos // 2), generator=gen)
    corrupt[:, -1] = torch.randint(3, VOCAB, (n,), generator=gen)
    return clean, corrupt


def check_against_single_edges(setup: CircuitSetup, scores: torch.Tensor, every: int) -> None:
    """Exact scores [n_src n_dst] equal m(full minus that edge) - m(full) for every `every`-th edge,
    each evaluated alone, and are zero off the graph."""
    from mechscope.circuits.engine import evaluate

    g = setup.graph
    full = float(evaluate(setup, g.full()).mean())
    for s, d in g.edge_index().tolist()[::every]:
        mask = g.full()
        mask[s, d] = False
        assert abs(float(scores[s, d]) - (float(evaluate(setup, mask).mean()) - full)) <= 1e-5, (s, d)
    assert float(scores[~g.allowed].abs().sum()) == 0.0


def setup_for(model, ablation: str = "patching", **kw) -> CircuitSetup:
    clean, corrupt = token_pairs()
    return CircuitSetup.from_tokens(model, clean, corrupt, metric=logit_diff, ablation=ablation, **kw)


PLANTED_EDGES = ("input->a0", "input->a1", "input->logits", "a0.h1->a1", "a0.h1->logits", "a1.h2->logits")


def planted_gpt2(seed: int = 0) -> HookedModel:
    """A 2-layer, 4-head GPT-2 whose only live components are heads a0.h1 and a1.h2: every other
    head's W_O and both MLPs' output weights are zero. Every edge outside PLANTED_EDGES has exactly
    zero effect; the live heads' outputs are scaled up so the planted edges matter."""
    hf = small_hf_model("gpt2", seed=seed, n_layers=2, d_model=64, n_heads=4, vocab=VOCAB)
    d_head = 16
    with torch.no_grad():
        for layer, live in ((0, 1), (1, 2)):
            block = hf.transformer.h[layer]
            w = block.attn.c_proj.weight                     # Conv1D [n_heads*d_head, d_model]
            for h in range(4):
                rows = slice(h * d_head, (h + 1) * d_head)
                w[rows] = 0 if h != live else w[rows] * 20
            block.attn.c_attn.weight[:, :128] *= 8          # sharper attention patterns
            block.mlp.c_proj.weight.zero_()
            block.mlp.c_proj.bias.zero_()
        hf.transformer.wte.weight.mul_(20)
    return HookedModel.from_hf(hf, gpt2_tokenizer(), spec="planted-gpt2")
