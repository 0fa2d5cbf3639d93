"""ModelConfig: the sizes and kinds an analysis needs, read from the HF config through the table."""

from __future__ import annotations

import dataclasses

from mechscope.model.adapters import ArchitectureTable


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    arch: str                 # adapter table name: "gpt2", "neox", "llama", ...
    hf_class: str
    n_layers: int
    d_model: int
    n_heads: int
    n_kv_heads: int           # == n_heads unless grouped-query attention
    d_head: int
    d_mlp: int
    d_vocab: int
    n_ctx: int
    positional: str           # "learned" | "rotary" | "none"
    norm: str                 # "layernorm" | "rmsnorm"
    act_fn: str
    gated_mlp: bool
    parallel_attn_mlp: bool
    tied_embeddings: bool
    n_params: int

    @classmethod
    def from_hf(cls, hf_model, table: ArchitectureTable) -> ModelConfig:
        c = hf_model.config
        d_model = getattr(c, table.d_model_key)
        n_heads = getattr(c, table.n_heads_key)
        n_kv = getattr(c, table.n_kv_heads_key, None) if table.n_kv_heads_key else None
        d_head = getattr(c, "head_dim", None) or d_model // n_heads
        d_mlp = getattr(c, table.d_mlp_key, None) or 4 * d_model
        parallel = table.ln2 is None or (bool(getattr(c, table.parallel_attn_mlp_attr, False))
                                         if table.parallel_attn_mlp_attr else False)
        return cls(
            arch=table.name,
            hf_class=type(hf_model).__name__,
            n_layers=getattr(c, table.n_layers_key),
            d_model=d_model,
            n_heads=n_heads,
            n_kv_heads=n_kv or n_heads,
            d_head=d_head,
            d_mlp=d_mlp,
            d_vocab=hf_model.get_input_embeddings().weight.shape[0],
            n_ctx=getattr(c, table.n_ctx_key),
            positional=table.positional,
            norm=table.norm,
            act_fn=str(getattr(c, table.act_key, "")),
            gated_mlp=table.mlp_gate is not None,
            parallel_attn_mlp=parallel,
            tied_embeddings=bool(getattr(c, "tie_word_embeddings", False)),
            n_params=sum(p.numel() for p in hf_model.parameters()),
        )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
