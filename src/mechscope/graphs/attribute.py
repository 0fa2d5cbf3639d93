"""Attribution graphs: the direct effects between the nodes of one prompt's replacement model.

Phases (circuit-tracer's algorithm, Ameisen et al. 2025):

1. Replacement forward (replacement.py) on `batch_size` copies of the prompt: every feature
   activation, MLP error and token embedding is a leaf, and every feature pre-activation and logit
   is a linear function of the leaves.
2. Targets: every active feature (its pre-activation) and the logit targets, the most likely next
   tokens until their probabilities sum to `desired_logit_prob` (at most `max_n_logits`), each read
   as logit minus the mean logit.
3. One backward per `batch_size` targets, copy b carrying target b: the gradient at a node's write
   site . what it writes is that source's direct effect on the target (feature: the gradient at each
   MLP output it writes to . activation * decoder row; error node: gradient . error vector; token:
   gradient at the embedding . embedding), as circuit-tracer contracts them; a feature target is its
   encoder direction . the MLP input, so no backward passes through the dictionaries.
4. The adjacency matrix A [n_nodes n_nodes], rows = targets, columns = sources, nodes ordered
   [active features (layer, pos, latent), errors (layer-major, layer * n_pos + pos), tokens, logits].

As in circuit-tracer, a leading BOS position has no feature nodes and its error nodes are zero
(`zero_positions`); its MLP outputs are constants of the replacement model.

With `max_feature_nodes` (circuit-tracer's option of that name), the logit rows come first, then the
features in order of their influence on the logits as estimated from the rows computed so far
(re-ranked every `update_interval` batches), until that many features have rows; the graph keeps only
those features (the others' effects stay in no node, as in circuit-tracer).

    graph = attribute(model, transcoders, "The cat sat on the")
    graph.adjacency, graph.prune(), graph.scores(), graph.to_neuronpedia(), graph.figure()
"""

from __future__ import annotations

import torch
from torch import Tensor

from mechscope.errors import InputError
from mechscope.graphs.graph import AttributionGraph, influence, normalize_rows
from mechscope.graphs.replacement import dictionary_view, replacement_forward
from mechscope.progress import progress


def logit_targets(logits: Tensor, max_n_logits: int = 10, desired_logit_prob: float = 0.95) -> tuple[Tensor, Tensor]:
    """Most likely next tokens of logits [d_vocab] until their probability reaches desired_logit_prob.

    -> (token ids [n], probabilities [n]), n <= max_n_logits.
    """
    probs = logits.float().softmax(-1)
    top_p, top_i = probs.topk(min(max_n_logits, probs.numel()))
    n = int((top_p.cumsum(0) < desired_logit_prob).sum()) + 1
    n = min(n, len(top_p))
    return top_i[:n], top_p[:n]


def attribute(model, transcoders, prompt: str | Tensor, *, max_n_logits: int = 10,
              desired_logit_prob: float = 0.95, batch_size: int = 64, max_feature_nodes: int | None = None,
              update_interval: int = 4, zero_positions: int | None = None,
              show_progress: bool | None = None) -> AttributionGraph:
    """The attribution graph of `prompt` (text, or token ids [pos]) through one transcoder per layer
    ({layer: transcoder}) or one cross-layer transcoder; at most `max_feature_nodes` features (None: all).

    zero_positions: the first this many positions have no feature nodes and zero error nodes (their MLP
    outputs are constants; see replacement_forward). None: 1 if the prompt starts with the tokenizer's
    BOS token (circuit-tracer starts every prompt with one and ignores it: an attention sink whose
    outsized activations explain nothing about the prompt), else 0.
    """
    tokens = model.to_tokens(prompt)[0] if isinstance(prompt, str) else torch.as_tensor(prompt).reshape(-1)
    if tokens.numel() < 1:
        raise InputError("the prompt has no tokens")
    tokens = tokens.to(model.device)
    n_pos, n_layers = tokens.numel(), model.cfg.n_layers
    if zero_positions is None:
        bos = getattr(model, "bos_token_id", None)
        zero_positions = int(bos is not None and int(tokens[0]) == bos)
    trace = replacement_forward(model, transcoders, tokens.expand(batch_size, n_pos), last_logits_only=True,
                                zero_positions=zero_positions)
    layers = range(n_layers)
    acts0 = {layer: trace.acts[layer][0].detach() for layer in layers}
    active = torch.cat([torch.cat([torch.full((len(nz), 1), layer), nz], 1)
                        for layer in layers for nz in [acts0[layer].nonzero()]]).long()          # [n_feat 3]
    act_values = torch.stack([acts0[int(lay)][p, f] for lay, p, f in active]) if len(active) else torch.zeros(0)
    logit_ids, logit_p = logit_targets(trace.logits[0, -1].detach(), max_n_logits, desired_logit_prob)

    n_feat, n_err, n_logit = len(active), n_layers * n_pos, len(logit_ids)
    n_nodes = n_feat + n_err + n_pos + n_logit
    adjacency = torch.zeros(n_nodes, n_nodes)
    feat_index = {layer: (active[:, 0] == layer).nonzero().squeeze(-1) for layer in layers}   # rows in `active`
    leaves = [trace.errors[layer] for layer in layers] + [trace.embed]
    view = dictionary_view(transcoders)
    with torch.no_grad():
        # a feature target's input direction, and what each active feature writes into each layer it reaches
        x_dtype = trace.inputs[0].dtype
        encoder = torch.zeros(n_feat, model.cfg.d_model, dtype=x_dtype, device=tokens.device)
        writes: dict[tuple[int, int], Tensor] = {}          # (source, target layer) -> [n_pos max_per_pos d]
        slots: dict[int, Tensor] = {}                         # source layer -> each feature's slot at its position
        for layer in layers:
            idx = feat_index[layer]
            if len(idx):
                f = active[idx, 2].to(tokens.device)
                encoder[idx] = view.layer_encoder(layer)[:, f].T.to(x_dtype)
                for target in range(layer, n_layers):
                    dec = view.layer_decoder(layer, target)
                    if dec is not None:
                        vecs = (dec[f] * act_values[idx, None].to(dec.device)).to(x_dtype)
                        writes[layer, target], slots[layer] = _by_position(active[idx, 1], vecs, n_pos)

    def target_values(rows: list[int]) -> Tensor:
        """The sum over copies b of the scalar copy b carries: target rows[b] (a feature's pre-activation
        less its bias, or a logit less the mean logit)."""
        rows_t = torch.tensor(rows)
        total = trace.logits.new_zeros(())
        copies = torch.arange(len(rows))
        feats = rows_t < n_feat
        row_layer = torch.full((len(rows),), -1)
        row_layer[feats] = active[rows_t[feats], 0]
        for layer in layers:
            sel = row_layer == layer
            if bool(sel.any()):
                feat_rows = rows_t[sel]
                x = trace.inputs[layer][copies[sel], active[feat_rows, 1]]                     # [n d]
                total = total + (x * encoder[feat_rows]).sum()
        logit_copies = copies[~feats]
        if len(logit_copies):
            logits = trace.logits[logit_copies, -1]                                             # [n d_vocab]
            ids = logit_ids[rows_t[~feats] - (n_feat + n_err + n_pos)].to(logits.device)
            total = total + (logits.gather(1, ids[:, None]).squeeze(1) - logits.mean(-1)).sum()
        return total

    def compute_rows(chunk: list[int]) -> None:
        grads = torch.autograd.grad(target_values(chunk), leaves, retain_graph=True, allow_unused=True)
        g_err, g_emb = grads[:n_layers], grads[-1]
        rows = torch.tensor(chunk)
        nb = len(chunk)
        for source in layers:       # feature -> target: the gradient at each MLP output it writes to . what it writes
            idx, edges = feat_index[source], None
            for target in range(source, n_layers):
                if (source, target) in writes and g_err[target] is not None:
                    by_pos = torch.bmm(g_err[target][:nb].transpose(0, 1), writes[source, target].transpose(1, 2))
                    part = by_pos[active[idx, 1], :, slots[source]]                            # [n_source nb]
                    edges = part if edges is None else edges + part
            if edges is not None:
                adjacency[rows[:, None], idx[None, :]] = edges.T.float().cpu()
        for layer in layers:
            if g_err[layer] is not None:
                contrib = (g_err[layer][:nb] * trace.errors[layer][:nb].detach()).sum(-1)      # [nb pos]
                adjacency[rows, n_feat + layer * n_pos:n_feat + (layer + 1) * n_pos] = contrib.float().cpu()
        if g_emb is not None:
            adjacency[rows, n_feat + n_err:n_feat + n_err + n_pos] = (g_emb[:nb] * trace.embed[:nb].detach()).sum(-1).float().cpu()

    if max_feature_nodes is not None and max_feature_nodes < 0:
        raise InputError(f"max_feature_nodes={max_feature_nodes}: pass a count >= 0, or None for every active feature")
    n_keep = n_feat if max_feature_nodes is None else min(max_feature_nodes, n_feat)
    logit_rows = list(range(n_nodes - n_logit, n_nodes))
    weights = torch.zeros(n_nodes)
    weights[n_nodes - n_logit:] = logit_p.float().cpu()
    visited = torch.zeros(n_feat, dtype=torch.bool)
    with progress(total=n_logit + n_keep, desc="attribution", enabled=show_progress) as bar:
        for i in range(0, n_logit, batch_size):
            compute_rows(logit_rows[i:i + batch_size])
            bar.update(len(logit_rows[i:i + batch_size]))
        while int(visited.sum()) < n_keep:
            if n_keep == n_feat:
                pending = torch.arange(n_feat)
            else:   # rank the unvisited features by their influence through the rows computed so far
                rank = influence(normalize_rows(adjacency), weights)[:n_feat].argsort(descending=True, stable=True)
                pending = rank[~visited[rank]][:min(update_interval * batch_size, n_keep - int(visited.sum()))]
            for i in range(0, len(pending), batch_size):
                chunk = pending[i:i + batch_size]
                compute_rows(chunk.tolist())
                visited[chunk] = True
                bar.update(len(chunk))
    if n_keep < n_feat:
        keep = torch.cat([visited.nonzero().squeeze(-1), torch.arange(n_feat, n_nodes)])
        adjacency = adjacency[keep][:, keep]
        active, act_values = active[visited], act_values[visited]
    return AttributionGraph(
        prompt=prompt if isinstance(prompt, str) else "", input_tokens=tokens.tolist(),
        token_strings=_token_strings(model, tokens), n_layers=n_layers, active_features=active,
        activation_values=act_values.float(), logit_tokens=logit_ids.tolist(),
        logit_token_strings=_token_strings(model, logit_ids), logit_probabilities=logit_p.float(),
        adjacency=adjacency)


def _by_position(pos: Tensor, vecs: Tensor, n_pos: int) -> tuple[Tensor, Tensor]:
    """Vectors [n d] of features at positions pos [n] (ascending) -> ([n_pos max_per_pos d] zero-padded,
    slot [n]: each feature's index among those at its position), for one batched matmul per position."""
    counts = torch.bincount(pos, minlength=n_pos)
    slot = torch.arange(len(pos)) - (counts.cumsum(0) - counts)[pos]
    padded = vecs.new_zeros(n_pos, int(counts.max()), vecs.shape[-1])
    padded[pos.to(vecs.device), slot.to(vecs.device)] = vecs
    return padded, slot


def _token_strings(model, ids: Tensor) -> list[str]:
    tok = getattr(model, "tokenizer", None)
    if tok is None:
        return [str(int(i)) for i in ids]
    return [tok.decode([int(i)]) for i in ids]
