"""Each claim's verdict rule, on hand-made metrics just inside and just outside each threshold.

verdict(metrics, null) is a pure function of numbers, so these tests need no model.
"""

from __future__ import annotations

import pytest

from mechscope.claims import c02_norm_growth as c02


def test_c02_needs_growth_beyond_the_twin():
    import math

    twin = {"growth_factor_per_block": 1.04, "fit_r2": 0.99, "n_blocks": 12}
    edge = math.exp(c02.RATE_RATIO * math.log(1.04))          # log-rate 1.5x the twin's: ~1.0606
    ok = {"growth_factor_per_block": edge + 1e-4, "fit_r2": c02.MIN_R2, "n_blocks": 12}
    assert c02.verdict(ok, twin) == "supported"
    assert c02.verdict({**ok, "growth_factor_per_block": edge - 1e-4}, twin) == "inconclusive"
    assert c02.verdict({**ok, "fit_r2": c02.MIN_R2 - 1e-3}, twin) == "inconclusive"
    assert c02.verdict({**ok, "n_blocks": 2}, twin) == "inconclusive"
    assert c02.verdict({**ok, "growth_factor_per_block": 1.0}, twin) == "not supported"
    # a twin that shrinks sets no bar beyond MIN_FACTOR
    shrinking = {**twin, "growth_factor_per_block": 0.9}
    assert c02.verdict({**ok, "growth_factor_per_block": c02.MIN_FACTOR}, shrinking) == "supported"
    assert c02.verdict({**ok, "growth_factor_per_block": c02.MIN_FACTOR - 1e-3}, shrinking) == "inconclusive"
    # a model that grows just like a random network is not evidence of anything
    assert c02.verdict(twin, twin) == "inconclusive"
    assert c02.verdict(ok, None) == "inconclusive"


def test_c02_random_walk_fit_is_exact_on_sqrt_growth():
    norms = [(4.0 + 3.0 * layer) ** 0.5 for layer in range(8)]
    assert abs(c02.random_walk_r2(norms) - 1.0) < 1e-12
    assert c02.random_walk_r2([1.0, 2.0]) != c02.random_walk_r2([1.0, 2.0])  # NaN: too few points


def test_c09_textbook_induction_against_the_twin():
    from mechscope.claims import c09_induction_heads as c09

    twin = {"loss_drop": 0.0, "max_prefix_matching": 0.02}
    ok = {"loss_drop": c09.STRONG_DROP, "max_prefix_matching": 0.8, "min_span_prefix_matching": c09.STRONG_SCORE,
          "max_lagged_score": 0.8, "candidates_joint_share": c09.JOINT_SHARE, "copying_head_lag": 1}
    assert c09.verdict(ok, twin) == "supported"
    for key, below in [("loss_drop", c09.STRONG_DROP - 1e-3), ("min_span_prefix_matching", c09.STRONG_SCORE - 1e-3),
                       ("candidates_joint_share", c09.JOINT_SHARE - 1e-3)]:
        assert c09.verdict({**ok, key: below}, twin) == "inconclusive", key
    # a shifted circuit copies, but not by the textbook pattern: named, not called a non-copier
    assert c09.verdict({**ok, "copying_head_lag": 5}, twin) == "inconclusive"
    # the twin's own numbers raise the bar
    assert c09.verdict(ok, {"loss_drop": 0.6, "max_prefix_matching": 0.02}) == "not supported"
    assert c09.verdict(ok, {"loss_drop": 0.0, "max_prefix_matching": 0.11 + 1e-3}) == "inconclusive"
    assert c09.verdict({**ok, "loss_drop": c09.WEAK_DROP - 1e-3}, twin) == "not supported"
    assert c09.verdict({**ok, "max_lagged_score": c09.WEAK_SCORE - 1e-3}, twin) == "not supported"
    assert c09.verdict(ok, None) == "not supported"  # no null, no evidence


E = 1e-3  # just inside / just outside a threshold


def test_c01_needs_a_model_that_predicts():
    from mechscope.claims import c01_residual_accumulation as c01

    ok = {"model_ce": 3.0, "log_vocab": 10.0, "tuned_lens_kl": [4.0, 3.0, 1.9, 0.0],
          "tuned_beats_logit_everywhere": True}
    assert c01.verdict(ok, None) == "supported"
    assert c01.verdict({**ok, "model_ce": 9.0 + E}, None) == "inconclusive"                 # > 90% log(vocab)
    small_vocab = {**ok, "log_vocab": 3.0 + c01.CE_MARGIN}
    assert c01.verdict(small_vocab, None) == "supported"
    assert c01.verdict({**small_vocab, "model_ce": 3.0 + E}, None) == "inconclusive"        # not 1 nat below
    assert c01.verdict({**ok, "tuned_lens_kl": [4.0, 3.0, 2.0 + E, 0.0]}, None) == "inconclusive"  # not < half
    assert c01.verdict({**ok, "tuned_lens_kl": [4.0, 4.2 + E, 1.0, 0.0]}, None) == "inconclusive"  # rises > 5%
    assert c01.verdict({**ok, "tuned_beats_logit_everywhere": False}, None) == "inconclusive"
    assert c01.verdict({**ok, "tuned_lens_kl": [4.0, 3.0, 4.0, 0.0]}, None) == "not supported"


def test_c03_helix_beyond_the_twin():
    from mechscope.claims import c03_positional_helix as c03

    ok = {"top3_explained": 0.8, "pc1_spearman": -0.9, "helix_r2": [0.7, 0.7]}
    twin = {"top3_explained": 0.8 - c03.TWIN_MARGIN}
    assert c03.verdict(ok, twin) == "supported"
    assert c03.verdict(ok, {"top3_explained": 0.8 - c03.TWIN_MARGIN + E}) == "inconclusive"
    assert c03.verdict({**ok, "top3_explained": 0.8 - E}, {"top3_explained": 0.0}) == "inconclusive"
    assert c03.verdict({**ok, "helix_r2": [0.7, 0.7 - 2 * E]}, twin) == "inconclusive"
    assert c03.verdict({**ok, "top3_explained": 0.5 - E}, twin) == "not supported"
    assert c03.verdict({**ok, "pc1_spearman": 0.5 - E}, twin) == "not supported"


def test_c04_buckets_ignore_one_position_latents():
    from mechscope.claims import c04_positional_buckets as c04

    ok = {"n_buckets": 3, "mean_contiguity": 0.8, "mean_bucket_width": 64, "n_positions": 128}
    twin = {"n_buckets": 0}
    assert c04.verdict(ok, twin) == "supported"
    assert c04.verdict({**ok, "n_buckets": 2}, twin) == "inconclusive"
    assert c04.verdict(ok, {"n_buckets": 1}) == "inconclusive"                          # not 3 beyond the twin
    assert c04.verdict({**ok, "mean_contiguity": 0.8 - E}, twin) == "inconclusive"
    assert c04.verdict({**ok, "mean_bucket_width": 64 + E}, twin) == "inconclusive"
    assert c04.verdict({**ok, "mean_contiguity": 0.5 - E}, twin) == "not supported"
    assert c04.verdict({**ok, "n_buckets": 0, "mean_contiguity": 0.0}, twin) == "not supported"


def test_c04_contiguity_is_read_over_buckets_only():
    from mechscope.claims.c04_positional_buckets import PositionalBuckets

    r = PositionalBuckets(n_positions=10, n_latents_alive=5, positional_latents=[0, 1, 2], token_latents=0,
                          mixed_latents=0, widths=[1, 1, 4], contiguity=[1.0, 1.0, 0.5], starts=[0, 1, 2],
                          coverage=0.6, fvu=0.1, profiles=[])
    assert r.buckets == [2] and r.mean_contiguity == 0.5 and r.mean_width == 4.0


def test_c05_probes_against_their_shuffled_control():
    from mechscope.claims import c05_token_embeddings as c05

    assert c05.verdict({"probe_accuracy": [0.65, 0.9], "control_accuracy": [0.55 - E, 0.5]}, None) == "supported"
    assert c05.verdict({"probe_accuracy": [0.65 - E, 0.9], "control_accuracy": [0.5, 0.5]}, None) == "inconclusive"
    assert c05.verdict({"probe_accuracy": [0.7, 0.9], "control_accuracy": [0.6 + E, 0.5]}, None) == "inconclusive"
    assert c05.verdict({"probe_accuracy": [0.6, 0.6], "control_accuracy": [0.5, 0.5]}, None) == "not supported"
    assert c05.verdict({"probe_accuracy": [0.9], "control_accuracy": [0.5]}, None) == "inconclusive"


def test_c08_toy_superposition():
    from mechscope.claims import c08_superposition as c08

    ok = {"dims_per_feature_dense": 0.9, "dims_per_feature_sparsest": 0.6, "represented_sparsest": 3,
          "n_hidden": 2, "shape_sparsest": "pentagon"}
    assert c08.verdict(ok, None) == "supported"
    assert c08.verdict({**ok, "dims_per_feature_sparsest": 0.6 + E}, None) == "inconclusive"
    assert c08.verdict({**ok, "dims_per_feature_dense": 0.9 - E}, None) == "inconclusive"
    assert c08.verdict({**ok, "represented_sparsest": 2}, None) == "inconclusive"
    assert c08.verdict({**ok, "shape_sparsest": "other"}, None) == "inconclusive"
    assert c08.verdict({**ok, "dims_per_feature_sparsest": 0.9}, None) == "not supported"


def test_c10_ioi_against_the_twin():
    from mechscope.claims import c10_ioi_circuit as c10

    ok = {"accuracy": 0.9, "logit_diff": 1.0, "faithfulness": 0.6}
    twin = {"logit_diff": 0.0}
    assert c10.verdict(ok, twin) == "supported"
    assert c10.verdict({**ok, "accuracy": 0.9 - E}, twin) == "inconclusive"
    assert c10.verdict({**ok, "logit_diff": 1.0 - E}, twin) == "inconclusive"
    assert c10.verdict(ok, {"logit_diff": E}) == "inconclusive"
    assert c10.verdict({**ok, "faithfulness": 0.6 - E}, twin) == "inconclusive"
    assert c10.verdict({**ok, "faithfulness": 0.3 - E}, twin) == "not supported"
    assert c10.verdict({**ok, "accuracy": 0.7 - E}, twin) == "not supported"


def test_c11_docstring_against_the_twin():
    from mechscope.claims import c11_docstring as c11

    ok = {"accuracy": 0.8, "logit_diff": 1.0, "faithfulness": 0.6, "n_layers_important": 2}
    twin = {"logit_diff": 0.0}
    assert c11.verdict(ok, twin) == "supported"
    assert c11.verdict({**ok, "accuracy": 0.8 - E}, twin) == "inconclusive"
    assert c11.verdict(ok, {"logit_diff": E}) == "inconclusive"
    assert c11.verdict({**ok, "faithfulness": 0.6 - E}, twin) == "inconclusive"
    assert c11.verdict({**ok, "n_layers_important": 1}, twin) == "not supported"
    assert c11.verdict({**ok, "n_layers_important": 0}, twin) == "inconclusive"
    assert c11.verdict({**ok, "accuracy": 0.6 - E}, twin) == "not supported"


def test_c12_information_moves_in_identifiable_layers():
    from mechscope.claims import c12_information_movement as c12

    ok = {"gap": 2.0, "n_blocks": 12, "arrival_layer": 9, "rise_width": 4, "changed_share_before_rise": 0.8}
    twin = {"gap": 0.0}
    assert c12.verdict(ok, twin) == "supported"
    assert c12.verdict({**ok, "rise_width": 5}, twin) == "inconclusive"            # > ceil(12 / 3)
    assert c12.verdict({**ok, "rise_width": 7}, twin) == "not supported"           # > half the blocks
    assert c12.verdict({**ok, "arrival_layer": -1, "rise_width": -1}, twin) == "not supported"
    assert c12.verdict({**ok, "changed_share_before_rise": 0.8 - E}, twin) == "inconclusive"
    assert c12.verdict({**ok, "gap": 1.0 - E}, twin) == "inconclusive"
    assert c12.verdict(ok, {"gap": 1.0 + E}) == "inconclusive"
    assert c12.movement([0.0, 0.1, 0.5, 0.9], [1.0, 0.9, 0.5, 0.1]) == (3, 2, 0.9)
    assert c12.movement([0.0, 0.3, 0.5], [1.0, 0.7, 0.5]) == (-1, -1, 0.5)


@pytest.mark.parametrize("start, arrival", [(2, 27), (12, 15), (0, 1), (20, 29)])
def test_c12_rise_refined_in_rounds_equals_every_layer_patched(start, arrival):
    """A monotone rise over 30 layers, sampled at 8: the rounds of at most 8 layers give the width that
    patching every layer gives, in at most 3 rounds after the sampled sweep."""
    from mechscope.claims import c12_information_movement as c12

    n = 30
    def end_share(layer):   # <= LOW up to `start`, >= HIGH from `arrival`, linear in between
        return 0.0 if layer <= start else 1.0 if layer >= arrival else 0.3 + 0.4 * (layer - start) / (arrival - start)

    patched = []
    def shares(layers):
        patched.append(list(layers))
        return [1.0 - end_share(layer) for layer in layers], [end_share(layer) for layer in layers]

    from mechscope.claims.base import Budget

    sampled = Budget(max_layers=8).layers(n)
    layers, at_changed, at_end = c12.refine_rise(shares, sampled, *shares(sampled), per_round=8)
    every = c12.movement([end_share(i) for i in range(n)], [1.0 - end_share(i) for i in range(n)])
    assert c12.movement(at_end, at_changed, layers) == every == (arrival, arrival - start, 1.0)
    assert layers == sorted(set(layers)) and all(len(r) <= 8 for r in patched)
    assert len(patched) - 1 <= 3                    # rounds after the sampled sweep


def test_c12_refinement_rounds():
    from mechscope.claims import c12_information_movement as c12

    assert c12.refinement([0, 10, 20, 29], arrival=20, width=10, per_round=4) == [11, 14, 16, 19]
    assert c12.refinement([0, 10, 20, 29], arrival=20, width=10, per_round=9) == list(range(11, 20))
    assert c12.refinement(list(range(30)), arrival=20, width=10, per_round=4) == []
    assert c12.refinement([0, 10, 20, 29], arrival=10, width=1, per_round=4) == []
    assert c12.refinement([0, 10, 20, 29], arrival=-1, width=-1, per_round=4) == []


def test_c16_small_gap_counts_only_when_the_norms_mattered():
    from mechscope.claims import c16_layernorm_removable as c16

    fine = {"overflow_norm_free": 0.0, "overflow_frozen_untrained": 0.0, "steps": c16.MIN_DECISIVE_STEPS}
    twin = {"freeze_cost": 0.0, **fine}
    assert c16.verdict({"gap": 0.1, "freeze_cost": 0.2, **fine}, twin) == "supported"
    assert c16.verdict({"gap": 0.1 + E, "freeze_cost": 1.0, **fine}, twin) == "inconclusive"
    assert c16.verdict({"gap": 0.1, "freeze_cost": 0.2 - E, **fine}, twin) == "inconclusive"   # removing nothing
    assert c16.verdict({"gap": 0.5 + E, "freeze_cost": 1.0, **fine}, twin) == "not supported"
    assert c16.verdict({"gap": 0.5, "freeze_cost": 1.0, **fine}, twin) == "inconclusive"
    short = {**fine, "steps": c16.MIN_DECISIVE_STEPS - 1}      # too short a fine-tune to show the norms resist
    assert c16.verdict({"gap": 0.5 + E, "freeze_cost": 1.0, **short}, twin) == "inconclusive"
    assert c16.verdict({"gap": 0.0, "freeze_cost": 1.0, **short, "overflow_norm_free": 1e-4}, twin) == "inconclusive"
    assert c16.verdict({"gap": 0.1, "freeze_cost": 1.0, **short}, twin) == "supported"


def test_c16_overflow_without_norms_is_not_supported_and_freezing_overflow_means_they_mattered():
    from mechscope.claims import c16_layernorm_removable as c16

    fine = {"overflow_norm_free": 0.0, "overflow_frozen_untrained": 0.0, "steps": c16.MIN_DECISIVE_STEPS}
    twin = {"freeze_cost": 0.0, **fine}
    assert c16.verdict({"gap": 0.0, "freeze_cost": 1.0, **fine, "overflow_norm_free": 1e-4}, twin) == "not supported"
    frozen_breaks = {"gap": 0.1, "freeze_cost": 0.0, **fine, "overflow_frozen_untrained": 1e-4}
    assert c16.verdict(frozen_breaks, twin) == "supported"
    assert c16.verdict(frozen_breaks, {**twin, "overflow_frozen_untrained": 1e-4}) == "inconclusive"


def test_c17_dilution_beyond_the_twin():
    from mechscope.claims import c17_norm_dilution as c17

    ok = {"final_share": 0.5, "final_norm_ratio": 1.5, "final_retained": 0.5}
    twin = {"final_share": 0.7 + E}
    assert c17.verdict(ok, twin) == "supported"
    assert c17.verdict(ok, {"final_share": 0.7 - E}) == "inconclusive"
    assert c17.verdict({**ok, "final_retained": 0.5 - E}, twin) == "inconclusive"
    assert c17.verdict({**ok, "final_share": 0.8 + E}, twin) == "not supported"
    assert c17.verdict({**ok, "final_norm_ratio": 1.1 - E}, twin) == "not supported"


def test_c18_absolute_bar_and_the_twin():
    from mechscope.claims import c18_stages as c18

    ok = {"first_block_agreement": 0.6195, "last_block_agreement": 0.5, "middle_median_agreement": 0.72,
          "n_blocks": 12}
    twin = {"first_block_agreement": 0.9, "last_block_agreement": 0.9, "middle_median_agreement": 0.9, "n_blocks": 12}
    assert c18.verdict(ok, twin) == "supported"
    assert c18.verdict({**ok, "middle_median_agreement": 0.72 - E}, twin) == "not supported"   # 66% is not robust
    assert c18.verdict({**ok, "first_block_agreement": 0.62 + E}, twin) == "inconclusive"
    assert c18.verdict({**ok, "first_block_agreement": 0.8, "last_block_agreement": 0.8}, twin) == "not supported"
    # the model's contrast (0.1005) must beat the twin's by 0.1
    assert c18.verdict(ok, {**twin, "first_block_agreement": 0.9 - 0.0004, "last_block_agreement": 0.8}) \
        == "supported"
    assert c18.verdict(ok, {**twin, "first_block_agreement": 0.9 - 0.0006, "last_block_agreement": 0.8}) \
        == "inconclusive"
    assert c18.verdict({**ok, "n_blocks": 2}, twin) == "inconclusive"


def test_c19_best_cell_against_the_best_shuffled_cell():
    from mechscope.claims import c19_abba_baba as c19

    ok = {"best_probe_accuracy": 0.9, "null_best_accuracy": 0.75, "layer0_max_accuracy": 0.75}
    assert c19.verdict(ok, None) == "supported"
    assert c19.verdict({**ok, "best_probe_accuracy": 0.9 - E, "null_best_accuracy": 0.5}, None) == "inconclusive"
    assert c19.verdict({**ok, "layer0_max_accuracy": 0.75 + E}, None) == "inconclusive"
    assert c19.verdict({**ok, "null_best_accuracy": 0.75 + E}, None) == "not supported"
    assert c19.verdict({**ok, "best_probe_accuracy": 0.7 - E, "null_best_accuracy": 0.5}, None) == "not supported"


def test_c20_sparse_code_must_beat_a_dense_one():
    from mechscope.claims import c20_sae_decomposition as c20

    ok = {"topk_explained_variance": 0.65, "topk_ce_loss_recovered": 0.5, "pca_explained_variance": 0.6,
          "ce_clean": 3.0, "ce_zero_ablation": 3.1, "log_vocab": 10.0}
    assert c20.verdict(ok, None) == "supported"
    assert c20.verdict({**ok, "pca_explained_variance": 0.6 + E}, None) == "inconclusive"
    assert c20.verdict({**ok, "pca_explained_variance": 0.65}, None) == "not supported"
    assert c20.verdict({**ok, "topk_ce_loss_recovered": 0.5 - E}, None) == "inconclusive"
    assert c20.verdict({**ok, "topk_ce_loss_recovered": 0.2 - E}, None) == "not supported"
    assert c20.verdict({**ok, "topk_explained_variance": 0.996, "topk_ce_loss_recovered": 0.996,
                        "pca_explained_variance": 0.5}, None) == "inconclusive"         # perfect: not "imperfectly"
    assert c20.verdict({**ok, "ce_zero_ablation": 3.1 - E}, None) == "inconclusive"
    assert c20.verdict({**ok, "ce_clean": 9.0 + E, "ce_zero_ablation": 20.0}, None) == "inconclusive"


def test_c20_pca_baseline_is_exact_on_a_low_rank_stream():
    import torch

    from mechscope.claims.c20_sae_decomposition import pca_explained_variance

    g = torch.Generator().manual_seed(0)
    basis = torch.randn(3, 16, generator=g)
    train, test = torch.randn(200, 3, generator=g) @ basis, torch.randn(50, 3, generator=g) @ basis
    assert abs(pca_explained_variance(train, test, 3) - 1.0) < 1e-6
    assert pca_explained_variance(train, test, 1) < 0.9
