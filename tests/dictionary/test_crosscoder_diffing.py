"""Model diffing on a tiny random GPT-2 (issue 19): B is A with one planted difference, the embedding of
every trigger token gaining one direction u, read by a relu_l1 crosscoder at blocks.0.hook_resid_post.

With 16 trigger tokens, u is a new feature of B (one direction on positions no single shared feature
covers) and one latent with r >= 0.9 fires on the triggers (measured, seed 0, 600 steps: r 0.973, on 99%
of trigger positions and 3.8% of the others). With one trigger, u always comes with that token's own
feature and is written into its latent's B decoder instead (feature absorption): the trigger latent reads
r 0.535 with A/B decoder cosine 0.55, and no latent is B-only. bench/bench_crosscoder_diff.py measures
the same on the default organism fine-tuned to a planted behaviour."""

import copy

import pytest
import torch

from mechscope.dictionary.crosscoder import CrosscoderConfig, create_crosscoder, crosscoder_diff, source_key
from mechscope.dictionary.trainer import SAETrainer, TrainerConfig
from mechscope.dictionary.transcoder import pair_batches

HOOK, VOCAB, RATE = "blocks.0.hook_resid_post", 512, 0.1
A, B = source_key("A", HOOK), source_key("B", HOOK)


@pytest.fixture(scope="module")
def model_a():
    from mechscope import HookedModel
    from tests.helpers import gpt2_tokenizer, small_hf_model

    return HookedModel.from_hf(small_hf_model("gpt2", vocab=VOCAB, d_model=32, n_layers=1), gpt2_tokenizer(),
                               spec="random:gpt2")


def _diff(model_a, n_triggers: int):
    """Train a crosscoder on A and B = A with u added to the trigger embeddings; per latent: r, firing rate
    at trigger positions and elsewhere on held-out tokens, A/B decoder cosine."""
    from mechscope.data.activation_store import capture_activations

    gen = torch.Generator().manual_seed(0)
    triggers = torch.arange(10, 10 + n_triggers)
    model_b = copy.deepcopy(model_a)
    wte = model_b.hf_model.transformer.wte.weight
    with torch.no_grad():
        wte[triggers] += wte.norm(dim=-1).mean() * torch.nn.functional.normalize(torch.randn(32, generator=gen), dim=0)

    def tokens(n, seed):
        g = torch.Generator().manual_seed(seed)
        t = torch.randint(0, VOCAB, (n, 32), generator=g)
        where = torch.rand(n, 32, generator=g) < RATE
        t[where] = triggers[torch.randint(0, n_triggers, (n, 32), generator=g)][where]
        return t

    def acts(tok):
        return [capture_activations(m, tok, [HOOK], drop_first_position=True)[HOOK] for m in (model_a, model_b)]

    train, held = tokens(512, 1), tokens(64, 2)
    xa, xb = acts(train)
    cc = create_crosscoder(CrosscoderConfig(d_in=64, d_sae=128, architecture="relu_l1", l1_coefficient=1.0,
                                            sources=(A, B), dead_after_tokens=20_000))
    SAETrainer(cc, TrainerConfig(steps=600, lr=3e-3, warmup_steps=20, show_progress=False)).fit(
        pair_batches({A: xa, B: xb}, 256, seed=0))
    x = torch.cat(acts(held), -1)
    diff = crosscoder_diff(cc, x)
    at = torch.isin(held[:, 1:], triggers).flatten()
    with torch.no_grad():
        fires = cc.eval().encode(x) > 0
        dec = cc.source_decoders()
        cosine = torch.nn.functional.cosine_similarity(dec[:, 0], dec[:, 1], dim=-1)
    return torch.tensor(diff.relative_norm), fires[at].double().mean(0), fires[~at].double().mean(0), cosine


def test_a_new_feature_of_b_gets_a_b_only_latent(model_a):
    r, at_trigger, elsewhere, _ = _diff(model_a, 16)
    best = int((at_trigger - elsewhere).argmax())
    assert r[best] >= 0.9 and at_trigger[best] >= 0.9 and elsewhere[best] <= 0.1, (r[best], at_trigger[best], elsewhere[best])


def test_a_change_that_always_comes_with_one_token_is_absorbed_into_its_latent(model_a):
    r, at_trigger, elsewhere, cosine = _diff(model_a, 1)
    best = int((at_trigger - elsewhere).argmax())
    assert at_trigger[best] >= 0.9 and abs(float(r[best]) - 0.5) < 0.1 and cosine[best] < 0.8
    assert not bool(((r >= 0.9) & (at_trigger >= 0.5)).any())
