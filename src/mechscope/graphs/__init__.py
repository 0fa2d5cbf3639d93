"""Attribution graphs over transcoders: the local replacement model, direct effects between
features, errors, tokens and logits, pruning by influence, and export (Neuronpedia JSON, HTML)."""
