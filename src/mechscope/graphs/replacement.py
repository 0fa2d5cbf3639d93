"""The local replacement model of one prompt (Ameisen et al. 2025), on mechscope's hooks.

One forward of the real model in which every nonlinearity outside the transcoders is frozen at its
value on this prompt, so the logits and every feature's pre-activation become *linear* functions
of the graph's source nodes, while the forward still reproduces the model's logits exactly:

    attention      blocks.L.attn.hook_pattern is detached: attention moves values with fixed weights
    norms          ln1 / ln2 / ln_final.hook_normalized = value (detached) + w * P(dx) / s, dx = input - input.detach()
                   (s the norm's divisor on this prompt, P centring for LayerNorm): value unchanged,
                   derivative that of the norm with s held fixed
    MLPs           blocks.L.hook_mlp_out = transcoder(acts) + skip(x) + error
                   acts: the transcoder's latent activations on this prompt, cut from the graph and
                   made leaves; error = true MLP output - transcoder output, a leaf too. With a
                   cross-layer transcoder, transcoder(acts) is what the latents of every layer <= L
                   write to layer L's output (each layer's activations are one leaf, used by all)
    embeddings     hook_embed is a leaf (learned positions, biases and b_dec stay constants)
    BOS            with zero_positions=1 (what attribute uses when the prompt starts with BOS, as
                   circuit-tracer does), position 0 has no active latents and a zero error leaf: its
                   MLP output, less the skip connection, is a constant

So d(target)/d(leaf) * leaf is a *direct* effect: a source reaches a target only through the
residual stream, frozen attention and norms, and skip connections, never through another feature
(each feature's effect is carried by its own leaf). These are circuit-tracer's semantics.

    trace = replacement_forward(model, transcoders, tokens)    # tokens [batch pos], copies of one prompt
    transcoders: {layer: MLP transcoder} for every layer, or one CrossLayerTranscoder
    trace.logits, trace.pre[L], trace.acts[L], trace.errors[L], trace.embed
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from mechscope.dictionary.transcoder import MLP_INPUT_SITES
from mechscope.errors import InputError
from mechscope.tasks.answer import forward_to_answer


@dataclasses.dataclass
class ReplacementTrace:
    """Tensors of one replacement forward (batch b copies of one prompt of n_pos tokens).

    logits [b pos d_vocab] ([b 1 d_vocab]: the last position only, if asked); pre[L] [b pos d_sae] feature pre-activations (functions of the leaves);
    acts[L] [b pos d_sae], errors[L] [b pos d_model], embed [b pos d_model]: the leaves.
    frozen: what was held fixed (patterns, norm inputs, outputs and divisors), by hook name;
    pass it back to `replacement_forward` to rerun the *same* linear model with other leaf values.
    inputs[L] [b pos d_model]: what the dictionary reads at layer L (the MLP input, a function of the leaves).
    """

    logits: Tensor
    pre: dict[int, Tensor]
    acts: dict[int, Tensor]
    errors: dict[int, Tensor]
    embed: Tensor
    frozen: dict[str, Tensor]
    inputs: dict[int, Tensor]


def check_transcoders(model, transcoders) -> None:
    """One MLP transcoder per layer, reading the MLP input and writing hook_mlp_out (or one CLT over all)."""
    n_layers = model.cfg.n_layers
    if getattr(transcoders, "is_cross_layer", False):
        expected = [f"blocks.{layer}.hook_mlp_out" for layer in range(n_layers)]
        inputs = [h.removeprefix(f"blocks.{layer}.") for layer, h in enumerate(transcoders.cfg.input_hooks)]
        if list(transcoders.cfg.output_hooks) != expected or any(site not in MLP_INPUT_SITES for site in inputs):
            raise InputError(f"the cross-layer transcoder maps {transcoders.cfg.input_hooks} -> "
                             f"{transcoders.cfg.output_hooks}; the replacement model needs every layer 0..{n_layers - 1}, "
                             f"blocks.L.{MLP_INPUT_SITES[0]} -> blocks.L.hook_mlp_out (CLTConfig.for_model)")
        return
    if sorted(transcoders) != list(range(n_layers)):
        raise InputError(f"attribution needs a transcoder for every layer 0..{n_layers - 1}; got layers "
                         f"{sorted(transcoders)}. Train the missing ones (TranscoderConfig.for_mlp)")
    for layer, tc in transcoders.items():
        site_in = tc.cfg.hook_name.removeprefix(f"blocks.{layer}.")
        if site_in not in MLP_INPUT_SITES or tc.cfg.output_hook_name != f"blocks.{layer}.hook_mlp_out":
            raise InputError(f"transcoder for layer {layer} maps {tc.cfg.hook_name} -> {tc.cfg.output_hook_name}; "
                             f"the replacement model needs blocks.{layer}.{MLP_INPUT_SITES[0]} -> blocks.{layer}.hook_mlp_out")


def _frozen_norm(module, kind: str, frozen: dict[str, Tensor], name: str, input_key: str, stash: dict,
                 weight_offset: float = 0.0):
    """Hook for `name` (a norm output): out_0 + w * P(x - x_0) / s_0, with x_0, out_0, s_0 the input,
    output and divisor on the prompt (recorded in `frozen` on the first run, read on reruns); w is the
    norm's weight plus the architecture's offset (Gemma multiplies by 1 + weight)."""
    gain = getattr(module, "weight", None)
    if gain is not None and weight_offset:
        gain = gain + weight_offset
    scale_name = name.replace("hook_normalized", "hook_scale")

    def fn(out: Tensor, hook) -> Tensor:
        x = stash[input_key]
        if name not in frozen:
            frozen[name], frozen[name + ":in"], frozen[scale_name] = out.detach(), x.detach(), stash[scale_name].detach()
        dx = x - frozen[name + ":in"]                     # zero in value on the prompt, identity in derivative
        if kind == "layernorm":
            dx = dx - dx.mean(-1, keepdim=True)
        lin = dx / frozen[scale_name]
        if gain is not None:
            lin = lin * gain.detach()
        return frozen[name] + lin.to(out.dtype)
    return fn


class _PerLayer:
    """One MLP transcoder per layer, seen as a cross-layer transcoder is: layer_pre_activations,
    layer_activation and layer_written (what the dictionary writes to layer L's MLP output)."""

    def __init__(self, transcoders: dict[int, object]):
        self.tcs = transcoders

    def layer_pre_activations(self, layer: int, x: Tensor) -> Tensor:
        tc = self.tcs[layer]
        x_n = x.to(tc.W_enc.dtype) * tc.input_scale
        return tc.pre_activations(x_n.reshape(-1, tc.d_in)).reshape(*x.shape[:-1], tc.d_sae)

    def layer_activation(self, layer: int, pre: Tensor) -> Tensor:
        return self.tcs[layer].activation(pre.reshape(-1, pre.shape[-1])).reshape(pre.shape)

    def layer_written(self, layer: int, acts: dict[int, Tensor], x: Tensor) -> Tensor:
        return self.tcs[layer].decode(acts[layer]) + self.tcs[layer].skip(x)

    def layer_encoder(self, layer: int) -> Tensor:
        tc = self.tcs[layer]
        return tc.W_enc * tc.input_scale

    def layer_decoder(self, source: int, target: int) -> Tensor | None:
        tc = self.tcs[source]
        return tc.W_dec / tc.output_divisor() if source == target else None


def dictionary_view(transcoders):
    """The per-layer interface of {layer: transcoder} or of a cross-layer transcoder: layer_pre_activations,
    layer_activation, layer_written, layer_encoder(layer) [d m], layer_decoder(source, target) [m d] | None."""
    return transcoders if getattr(transcoders, "is_cross_layer", False) else _PerLayer(transcoders)


def _modules(transcoders) -> list:
    return [transcoders] if getattr(transcoders, "is_cross_layer", False) else list(transcoders.values())


def replacement_forward(model, transcoders, tokens: Tensor, *,
                        frozen: dict[str, Tensor] | None = None,
                        acts: dict[int, Tensor] | None = None, last_logits_only: bool = False,
                        zero_positions: int = 0) -> ReplacementTrace:
    """Run the frozen replacement forward on tokens [batch pos] (grad enabled); see the module docstring.

    last_logits_only: unembed only the last position (trace.logits [batch 1 d_vocab]): what an
        attribution graph reads; on a 50k vocabulary the other positions' logits are a third of the forward.
    frozen: a previous trace's `frozen` (same tokens): rerun that linear model instead of freezing anew.
    acts: {layer: [batch pos d_sae]} feature activations to use instead of the transcoders' own
        (with `frozen`, this is an intervention on the replacement model: set a feature, see what moves).
    zero_positions: the first this many positions carry no features and no error (circuit-tracer's
        `zero_positions`, for the BOS token): the transcoders' activations there are set to 0 and the
        whole MLP output there, less the skip connection, is a constant. The logits are unchanged.
    """
    check_transcoders(model, transcoders)
    n_layers, kind = model.cfg.n_layers, model.cfg.norm
    offset = float(getattr(model.table, "norm_weight_offset", 0.0))
    blocks = model.structure.blocks
    frozen = {} if frozen is None else frozen
    stash: dict[str, Tensor] = {}
    pre, leaves, errors, embed, inputs = {}, {}, {}, {}, {}

    def keep(key):
        def fn(act, hook):
            stash[key] = act
        return fn

    def leaf_embed(act, hook):
        embed["e"] = act.detach().clone().requires_grad_(True)
        return embed["e"]

    def pattern(act, hook):
        return frozen.setdefault(hook.name, act.detach())

    view = dictionary_view(transcoders)

    def mlp_out(layer):
        def fn(out, hook):
            x = stash[f"blocks.{layer}.ln2.hook_normalized"]
            p = view.layer_pre_activations(layer, x)
            given = acts is not None and layer in acts
            a = acts[layer] if given else view.layer_activation(layer, p.detach())
            a = a.reshape(p.shape).detach().clone()
            if not given:
                a[:, :zero_positions] = 0
            a.requires_grad_(True)
            leaves[layer] = a
            written = view.layer_written(layer, leaves, x)
            name = hook.name
            if name + ":error" not in frozen:
                frozen[name], frozen[name + ":written"] = out.detach(), written.detach()
                frozen[name + ":error"] = out.detach() - written.detach()
                frozen[name + ":error"][:, :zero_positions] = 0     # there, part of the constant frozen[name]
            err = frozen[name + ":error"].clone().requires_grad_(True)
            pre[layer], leaves[layer], errors[layer], inputs[layer] = p, a, err, x
            # = written + err in exact arithmetic; written as the recorded output plus changes, so
            # that on the prompt the value is the model's own MLP output to the last bit
            moved = (written - frozen[name + ":written"]) + (err - frozen[name + ":error"])
            return frozen[name] + moved.to(out.dtype)
        return fn

    # the MLP's norm reads resid_mid, or resid_pre in parallel attention+MLP blocks (NeoX / Pythia, GPT-J,
    # Phi; where one norm feeds both, structure.blocks[L].ln2 is that norm and ln2.hook_normalized its output)
    mlp_reads = "hook_resid_pre" if model.cfg.parallel_attn_mlp else "hook_resid_mid"
    fwd: dict[str, list] = {"hook_embed": [leaf_embed]}
    for layer in range(n_layers):
        b = f"blocks.{layer}."
        for site in dict.fromkeys(("hook_resid_pre", mlp_reads, "ln1.hook_scale", "ln2.hook_scale")):
            fwd[b + site] = [keep(b + site)]
        fwd[b + "ln1.hook_normalized"] = [_frozen_norm(blocks[layer].ln1, kind, frozen, b + "ln1.hook_normalized",
                                                       b + "hook_resid_pre", stash, offset)]
        fwd[b + "ln2.hook_normalized"] = [_frozen_norm(blocks[layer].ln2, kind, frozen, b + "ln2.hook_normalized",
                                                       b + mlp_reads, stash, offset),
                                          keep(b + "ln2.hook_normalized")]
        fwd[b + "attn.hook_pattern"] = [pattern]
        fwd[b + "hook_mlp_out"] = [mlp_out(layer)]
    last = f"blocks.{n_layers - 1}.hook_resid_post"
    fwd[last] = [keep(last)]
    fwd["ln_final.hook_scale"] = [keep("ln_final.hook_scale")]
    fwd["ln_final.hook_normalized"] = [_frozen_norm(model.structure.final_norm, kind, frozen,
                                                    "ln_final.hook_normalized", last, stash, offset)]
    modules = _modules(transcoders)
    modes = [tc.training for tc in modules]
    try:
        for tc in modules:
            tc.eval()                      # inference activations (BatchTopK's threshold, dense TopK)
        with torch.enable_grad(), model.hooks(fwd=fwd):
            if last_logits_only:
                logits = forward_to_answer(model, tokens, [], -1, grad=True)[0].unsqueeze(1)
            else:
                logits = model(tokens)
    finally:
        for tc, mode in zip(modules, modes, strict=True):
            tc.train(mode)
    return ReplacementTrace(logits, pre, leaves, errors, embed["e"], frozen, inputs)
