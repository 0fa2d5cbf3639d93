"""Write a GPT-2 checkpoint from weights given in logical coordinates (see residual.py).

`CompiledGPT2` holds logical-coordinate weights for the embedding, every head's Q/K/V/O, every
MLP and the unembedding; `to_hf()` turns them into a `GPT2LMHeadModel` (untied unembedding, all
biases zero unless set, LayerNorm gains C / sqrt(d_model)), and `save()` writes the model with
`save_pretrained` (safetensors) and a word-level tokenizer.

Scores: a head's attention score is exactly ``(z_q @ q) . (z_k @ k)`` in logical coordinates
(the 1 / sqrt(d_head) of GPT-2 is folded into W_Q), up to LayerNorm's factor C / |z| on each side.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import torch

from mechscope.organisms.compiled.residual import CONST, Layout

SPECIAL = "<|endoftext|>"
UNKNOWN = "<unk>"


@dataclasses.dataclass
class CompiledGPT2:
    """Logical-coordinate weights of a GPT-2 model; shapes in logical coordinates (n = n_logical).

    embed: [vocab n]; pos: [n_ctx n]; unembed: [n vocab]; per layer L and head H: q, k, v: [n d_head],
    o: [d_head n], q_bias, k_bias, v_bias: [d_head]; per layer: mlp_in [n d_mlp], mlp_bias [d_mlp],
    mlp_out [d_mlp n].
    """

    layout: Layout
    vocab: list[str]            # token strings; id 0 is <|endoftext|> (BOS/EOS/PAD), id 1 <unk>
    n_layer: int
    n_head: int
    n_ctx: int
    d_mlp: int = 4
    activation: str = "relu"

    def __post_init__(self) -> None:
        n, d_head = self.layout.n_logical, self.d_head
        z = lambda *shape: torch.zeros(*shape, dtype=torch.float64)  # noqa: E731
        self.embed, self.pos, self.unembed = z(len(self.vocab), n), z(self.n_ctx, n), z(n, len(self.vocab))
        self.pos[:, 0] = CONST
        self.heads = [[{"q": z(n, d_head), "k": z(n, d_head), "v": z(n, d_head), "o": z(d_head, n),
                        "q_bias": z(d_head), "k_bias": z(d_head), "v_bias": z(d_head)}
                       for _ in range(self.n_head)] for _ in range(self.n_layer)]
        self.mlps = [{"mlp_in": z(n, self.d_mlp), "mlp_bias": z(self.d_mlp), "mlp_out": z(self.d_mlp, n)}
                     for _ in range(self.n_layer)]

    @property
    def d_head(self) -> int:
        return self.layout.d_model // self.n_head

    def token_id(self, word: str) -> int:
        return self.vocab.index(word)

    def config(self):
        from transformers import GPT2Config

        return GPT2Config(vocab_size=len(self.vocab), n_positions=self.n_ctx, n_embd=self.layout.d_model,
                          n_layer=self.n_layer, n_head=self.n_head, n_inner=self.d_mlp,
                          activation_function=self.activation, resid_pdrop=0.0, embd_pdrop=0.0,
                          attn_pdrop=0.0, layer_norm_epsilon=1e-5, tie_word_embeddings=False,
                          bos_token_id=0, eos_token_id=0, pad_token_id=0)

    def to_hf(self):
        """A `GPT2LMHeadModel` (float32, eval mode) with these weights."""
        from transformers import GPT2LMHeadModel

        model = GPT2LMHeadModel(self.config()).eval()
        basis = self.layout.basis                                   # [d_model n]
        gain = CONST / math.sqrt(self.layout.d_model)
        scale = math.sqrt(self.d_head)                              # undo GPT-2's 1/sqrt(d_head)
        f32 = lambda t: t.to(torch.float32)                         # noqa: E731
        with torch.no_grad():
            for p in model.parameters():
                p.zero_()
            tr = model.transformer
            tr.wte.weight.copy_(f32(self.embed @ basis.T))
            tr.wpe.weight.copy_(f32(self.pos @ basis.T))
            model.lm_head.weight.copy_(f32((basis @ self.unembed).T))
            tr.ln_f.weight.fill_(gain)
            for layer, block in enumerate(tr.h):
                block.ln_1.weight.fill_(gain)
                block.ln_2.weight.fill_(gain)
                heads = self.heads[layer]
                q = torch.cat([basis @ h["q"] * scale for h in heads], 1)
                k = torch.cat([basis @ h["k"] for h in heads], 1)
                v = torch.cat([basis @ h["v"] for h in heads], 1)
                block.attn.c_attn.weight.copy_(f32(torch.cat([q, k, v], 1)))
                block.attn.c_attn.bias.copy_(f32(torch.cat(
                    [torch.cat([h["q_bias"] * scale for h in heads]), torch.cat([h["k_bias"] for h in heads]),
                     torch.cat([h["v_bias"] for h in heads])])))
                block.attn.c_proj.weight.copy_(f32(torch.cat([h["o"] @ basis.T for h in heads], 0)))
                mlp = self.mlps[layer]
                block.mlp.c_fc.weight.copy_(f32(basis @ mlp["mlp_in"]))
                block.mlp.c_fc.bias.copy_(f32(mlp["mlp_bias"]))
                block.mlp.c_proj.weight.copy_(f32(mlp["mlp_out"] @ basis.T))
        return model

    def tokenizer(self):
        """A word-level tokenizer over `vocab` (text split into words and punctuation), for save_pretrained."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast

        tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(self.vocab)}, unk_token=UNKNOWN))
        tok.pre_tokenizer = pre_tokenizers.Whitespace()             # words and punctuation runs
        tok.decoder = decoders.WordPiece(prefix="##")          # joins words with spaces
        fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=SPECIAL, eos_token=SPECIAL,
                                       pad_token=SPECIAL, unk_token=UNKNOWN)
        fast.model_max_length = self.n_ctx
        return fast

    def save(self, out: str | Path) -> Path:
        """Write config, safetensors weights and tokenizer into `out` (created)."""
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        self.to_hf().save_pretrained(out, safe_serialization=True)
        self.tokenizer().save_pretrained(str(out))
        return out
