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
