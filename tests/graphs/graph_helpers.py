"""Random transcoders for every layer of a model (enough active latents to make a real graph)."""

import torch

from mechscope.dictionary.transcoder import TranscoderConfig, create_transcoder


def random_transcoders(model, arch="topk", k=8, expansion=4, skip=False, seed=0):
    out = {}
    for layer in range(model.cfg.n_layers):
        tc = create_transcoder(TranscoderConfig.for_mlp(model.cfg.d_model, layer, architecture=arch, k=k,
                                                        expansion_factor=expansion, skip_connection=skip,
                                                        seed=seed + layer, jumprelu_init_threshold=0.05))
        with torch.no_grad():
            tc.b_enc.fill_(0.1)
            tc.W_dec.mul_(0.5)
            if skip:
                tc.W_skip.normal_(0, 0.05, generator=torch.Generator().manual_seed(seed + layer))
        out[layer] = tc.eval()
    return out


def random_clt(model, k=8, expansion=4, seed=0):
    """A random cross-layer transcoder over every layer, with enough active latents for a real graph."""
    from mechscope.dictionary.clt import CLTConfig, create_clt

    clt = create_clt(CLTConfig.for_model(model.cfg.d_model, model.cfg.n_layers, k=k, expansion_factor=expansion,
                                         seed=seed))
    with torch.no_grad():
        clt.b_enc.fill_(0.1)
        clt.W_dec.mul_(0.5 * model.cfg.n_layers ** 0.5)
    return clt.eval()
