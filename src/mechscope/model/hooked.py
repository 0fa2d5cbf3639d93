"""HookedModel: a Hugging Face causal LM with TransformerLens hook points, caching and interventions.

The HF modules run the forward pass; we attach to them. With no hooks active, ``model(tokens)`` is
the plain HF forward (same modules, same SDPA kernel, same mask), so logits are bit-identical.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

import torch

from mechscope.errors import HookNameError, InputError
from mechscope.model import attention
from mechscope.model.adapters import ArchitectureTable, table_for
from mechscope.model.cache import ActivationCache
from mechscope.model.config import ModelConfig
from mechscope.model.hook_points import Attachment, HookFn, HookSet
from mechscope.model.memory import keep_freed_memory
from mechscope.model.names import ON_REQUEST, act_name, all_names, unknown_name_error
from mechscope.model.norms import norm_eps, norm_modules, norm_scale
from mechscope.model.sharding import gather_root
from mechscope.model.structure import Structure
from mechscope.model.tokens import Tokenization
from mechscope.model.weights import WeightViews

Names = None | str | Iterable[str] | re.Pattern | Callable[[str], bool]


def _is_alias_tuple(names) -> bool:
    """("resid_post", 3) is one name; ("blocks.0.hook_z", "blocks.1.hook_z") is two."""
    return isinstance(names, tuple) and not all(isinstance(n, str) for n in names)


class HookedModel(WeightViews, Tokenization):
    """Wrap an HF *ForCausalLM* and its tokenizer. Build with `mechscope.load` or `from_hf`."""

    def __init__(self, hf_model: torch.nn.Module, tokenizer, *, spec: str | None = None,
                 table: ArchitectureTable | None = None) -> None:
        self.table = table or table_for(hf_model)
        self.hf_model = hf_model.eval()
        self.tokenizer = tokenizer
        self.spec = spec
        self.cfg = ModelConfig.from_hf(hf_model, self.table)
        self.structure = Structure.resolve(hf_model, self.table)
        attention.register()
        if self.table.attn_kernel is None:
            hf_model.set_attn_implementation(attention.IMPLEMENTATION)
        else:
            for block in self.structure.blocks:
                self.table.attn_kernel(block.attn)
        self._hook_names = all_names(self.cfg.n_layers, learned_positions=self.cfg.positional == "learned",
                                     parallel_blocks=self.cfg.parallel_attn_mlp)
        self._known = set(self._hook_names)

    @classmethod
    def from_hf(cls, hf_model, tokenizer, *, spec: str | None = None) -> HookedModel:
        return cls(hf_model, tokenizer, spec=spec)

    def __repr__(self) -> str:
        c = self.cfg
        return (f"HookedModel({self.spec or c.hf_class}: {c.arch}, {c.n_layers} layers, d_model {c.d_model}, "
                f"{c.n_heads} heads, {c.n_params / 1e6:.2f}M params)")

    # -- basic properties ---------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self.structure.embed.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.structure.embed.weight.dtype

    @property
    def layers(self) -> torch.nn.ModuleList:
        """The HF decoder blocks (for layer deletion / swapping experiments)."""
        return self.structure.layers

    def to(self, device=None, dtype=None) -> HookedModel:
        self.hf_model.to(device=device, dtype=dtype)
        return self

    def hook_names(self) -> list[str]:
        return list(self._hook_names)

    def resolve_names(self, names: Names) -> list[str]:
        r"""A list of hook names from None (all), one exact name or alias, a list of them, a compiled
        `re.Pattern` (every name it matches anywhere) or a predicate ``name -> bool``.

        A string is always one name: ``"blocks.1"`` is an error, not layers 1, 10 and 11; pass
        ``re.compile(r"blocks\.1\.")`` to select by pattern.
        """
        if names is None:  # everything except what is computed only on request
            return [n for n in self._hook_names if not n.endswith(ON_REQUEST)]
        if isinstance(names, re.Pattern):
            found = [n for n in self._hook_names if names.search(n)]
            if not found:
                raise HookNameError(f"no hook point matches the pattern {names.pattern!r}; "
                                    f"model.hook_names() lists all {len(self._hook_names)}")
            return found
        if callable(names):
            return [n for n in self._hook_names if names(n)]
        if isinstance(names, str) or _is_alias_tuple(names):
            names = [names]
        return [self._exact_name(name) for name in names]

    def _exact_name(self, name: str | tuple) -> str:
        """One hook name from a name, an alias ("resid_post" with a layer) or a (short, layer) tuple."""
        canonical = act_name(*name) if isinstance(name, tuple) else name
        if isinstance(name, str) and name not in self._known:
            try:
                canonical = act_name(name)
            except HookNameError:
                canonical = name
        if canonical not in self._known:
            raise unknown_name_error(str(name), self._hook_names)
        return canonical

    # -- running ------------------------------------------------------------------------------------
    def _prepare(self, inputs, attention_mask) -> tuple[torch.Tensor, torch.Tensor | None]:
        if isinstance(inputs, (str, list)) and (isinstance(inputs, str) or isinstance(inputs[0], str)):
            batch = self.tokenize(inputs)
            tokens = batch.tokens
            if attention_mask is None and bool((batch.attention_mask == 0).any()):
                attention_mask = batch.attention_mask
        else:
            tokens = torch.as_tensor(inputs)
            if tokens.dim() == 1:
                tokens = tokens.unsqueeze(0)
            if tokens.dim() != 2 or tokens.dtype not in (torch.long, torch.int, torch.int32, torch.int64):
                raise InputError(f"tokens must be an integer tensor [batch pos], got {tuple(tokens.shape)} "
                                 f"{tokens.dtype}; pass text or model.to_tokens(text)")
            tokens = tokens.to(self.device, torch.long)
        if tokens.shape[1] > self.cfg.n_ctx:
            raise InputError(f"sequence of {tokens.shape[1]} tokens is longer than this model's context "
                             f"of {self.cfg.n_ctx}; truncate it (tokens[:, :{self.cfg.n_ctx}]) or split it")
        if tokens.numel() and (int(tokens.max()) >= self.cfg.d_vocab or int(tokens.min()) < 0):
            raise InputError(f"token ids must lie in [0, {self.cfg.d_vocab}); got max {int(tokens.max())}, "
                             f"min {int(tokens.min())}. Were they made by another tokenizer?")
        return tokens, attention_mask

    def _attachment(self, hookset: HookSet) -> Attachment:
        return Attachment(self.structure, hookset, self.table, cfg=self.cfg)

    def forward(self, inputs, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Logits [batch pos d_vocab] for text or tokens, with every active hook applied."""
        tokens, attention_mask = self._prepare(inputs, attention_mask)
        out = self.hf_model(input_ids=tokens, attention_mask=attention_mask, use_cache=False)
        return out.logits

    __call__ = forward

    @contextmanager
    def hooks(self, fwd: dict[str, HookFn | list[HookFn]] | None = None,
              bwd: dict[str, HookFn | list[HookFn]] | None = None) -> Iterator[HookedModel]:
        """Run hook functions on every forward (and backward) inside the block.

        ``fn(activation, hook) -> replacement | None``; `hook` has .name and .layer. Hooks are
        removed on exit, exceptions included. Nested blocks apply outer hooks first.
        """
        hookset = HookSet()
        for table, backward in ((fwd or {}, False), (bwd or {}, True)):
            for key, fns in table.items():
                for name in self.resolve_names(key):
                    for fn in fns if isinstance(fns, (list, tuple)) else [fns]:
                        hookset.add(name, fn, backward=backward)
        with self._attachment(hookset):
            yield self

    def run_with_hooks(self, inputs, *, fwd=None, bwd=None, attention_mask=None) -> torch.Tensor:
        with self.hooks(fwd=fwd, bwd=bwd):
            return self.forward(inputs, attention_mask)

    def run_with_cache(self, inputs, names: Names = None, *, device=None, dtype=None,
                       grad_metric: Callable[[torch.Tensor], torch.Tensor] | None = None,
                       attention_mask: torch.Tensor | None = None,
                       detach: bool = True) -> tuple[torch.Tensor, ActivationCache]:
        """Logits and an ActivationCache of the named hook points.

        names=None caches every point except ``attn.hook_result``, which costs a [batch pos head
        d_model] tensor per layer and is computed only when named (e.g. names=re.compile(r"hook_result|resid")).

        device/dtype: where and how to store cached tensors (e.g. "cpu", torch.float16).
        grad_metric: a function logits -> scalar; when given, the gradient of that scalar with respect
        to each cached activation is cached too, under ``name + "_grad"`` (parameter .grad untouched).

        The first call asks glibc to keep freed memory for reuse (see `mechscope.model.memory`;
        MECHSCOPE_KEEP_FREED_MEMORY=0 turns that off).
        """
        keep_freed_memory()
        resolved = self.resolve_names(names)
        store: dict[str, torch.Tensor] = {}
        live: dict[str, torch.Tensor] = {}
        hookset = HookSet()

        def save(act: torch.Tensor, hook) -> None:
            if grad_metric is not None:
                live[hook.name] = act
            kept = act.detach() if detach else act
            store[hook.name] = kept.to(device=device or kept.device, dtype=dtype or kept.dtype)

        for name in resolved:
            hookset.add(name, save)
        grad_ctx = torch.enable_grad() if grad_metric is not None else torch.no_grad()
        with grad_ctx, self._attachment(hookset):
            logits = self.forward(inputs, attention_mask)
            if grad_metric is not None:
                metric = grad_metric(logits)
                wrt = [t for t in live.values() if t.requires_grad]
                grads = torch.autograd.grad(metric, wrt, allow_unused=True)
                by_id = {id(t): g for t, g in zip(wrt, grads, strict=True)}
                for name, act in live.items():
                    g = by_id.get(id(act))
                    if g is not None:
                        store[name + "_grad"] = g.to(device=device or g.device, dtype=dtype or g.dtype)
        return (logits if grad_metric is not None else logits.detach()), ActivationCache(store, self)

    # -- pieces of the forward pass that analyses reuse --------------------------------------------
    def norms(self) -> dict[str, torch.nn.Module]:
        """The norm modules by site ("blocks.L.ln1", "blocks.L.ln2", "ln_final"), in forward order."""
        return norm_modules(self.structure)

    def norm_scale(self, site: str, x: torch.Tensor) -> torch.Tensor:
        """The divisor s(x) [... 1] (fp32) that the norm at `site` applies to x [... d_model]; the
        value ``{site}.hook_scale`` reports."""
        module = self.norms()[site]
        return norm_scale(x, self.cfg.norm, norm_eps(module, self.table.norm_eps_attr))

    def ln_final(self, resid: torch.Tensor) -> torch.Tensor:
        """Apply the model's final norm (with its weight and bias) to [... d_model]."""
        gather_root(self)
        return self.structure.final_norm(resid)

    def unembed(self, x: torch.Tensor, vocab: torch.Tensor | list[int] | None = None) -> torch.Tensor:
        """Logits from a normalised residual [... d_model] -> [... d_vocab] (the model's own head); with
        `vocab` (k token ids) only those columns, [... k], without computing the others."""
        gather_root(self)
        head = self.structure.unembed
        if vocab is None:
            logits = head(x)
        elif isinstance(head, torch.nn.Linear):
            ids = torch.as_tensor(vocab, device=head.weight.device)
            logits = torch.nn.functional.linear(x, head.weight[ids], None if head.bias is None else head.bias[ids])
        else:   # a head that is not one matrix: compute it all, keep the columns
            logits = head(x)[..., torch.as_tensor(vocab, device=x.device)]
        cap = getattr(self.hf_model.config, "final_logit_softcapping", None)
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return logits

    # -- explicit, reversible weight transforms (see mechscope.model.folding) --------------------------
    def fold_layer_norm(self):
        """Fold norm weights into the projections that read them; returns a report with .undo()."""
        from mechscope.model.folding import fold_layer_norm

        return fold_layer_norm(self)

    def center_unembed(self):
        from mechscope.model.folding import center_unembed

        return center_unembed(self)

    def center_writing_weights(self):
        from mechscope.model.folding import center_writing_weights

        return center_writing_weights(self)

    def generate(self, inputs, **kwargs):
        """Pass-through to HF generate; text in gives text out."""
        as_text = isinstance(inputs, str)
        batch = self.tokenize(inputs) if isinstance(inputs, (str, list)) else None
        tokens = batch.tokens if batch is not None else torch.as_tensor(inputs).to(self.device)
        kwargs.setdefault("pad_token_id", self._pad_id())
        out = self.hf_model.generate(tokens, attention_mask=batch.attention_mask if batch else None, **kwargs)
        return self.to_string(out[0]) if as_text else out
