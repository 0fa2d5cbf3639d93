"""SAE variants against hand-written reference computations."""

import math

import pytest
import torch

from mechscope.dictionary import ARCHITECTURES, SAEConfig, create_sae
from mechscope.dictionary.geometric_median import geometric_median
from mechscope.dictionary.latent_stats import LatentStats
from mechscope.dictionary.sparse_ops import sparse_decode, topk_encode
from mechscope.errors import InputError


def _sae(arch, d_in=12, d_sae=40, **kw):
    sae = create_sae(SAEConfig(d_in=d_in, d_sae=d_sae, architecture=arch, k=kw.pop("k", 4), seed=1, **kw))
    x = torch.randn(64, d_in, generator=torch.Generator().manual_seed(2)) * 3 + 1
    sae.initialize_from_data(x)
    with torch.no_grad():  # break the tied init so encoder and decoder differ
        sae.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(3))
    return sae, x


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_forward_matches_encode_then_decode(arch):
    sae, x = _sae(arch)
    sae.eval()
    x3 = x.reshape(4, 16, -1)
    out = sae(x3)
    assert out.reconstruction.shape == x3.shape
    torch.testing.assert_close(out.reconstruction, sae.decode(sae.encode(x3)), atol=1e-5, rtol=1e-5)
    assert out.latents is not None and out.latents.shape == (4, 16, 40)
    assert out.fire_counts.sum() == (sae.encode(x) > 0).sum()


def test_encode_is_the_written_formula_for_relu():
    sae, x = _sae("relu_l1")
    x_n = x * sae.input_scale
    expected = torch.relu((x_n - sae.b_dec) @ sae.W_enc + sae.b_enc)
    torch.testing.assert_close(sae.encode(x), expected)
    torch.testing.assert_close(sae.decode(expected), (expected @ sae.W_dec + sae.b_dec) / sae.input_scale)


def test_input_scale_normalises_mean_squared_norm():
    sae, x = _sae("topk")
    assert float((x * sae.input_scale).pow(2).sum(-1).mean()) == pytest.approx(12, rel=1e-5)


def test_topk_has_exactly_k_active_and_sparse_grads_match_dense():
    sae, x = _sae("topk", k=5)
    sae.train()
    out = sae(x)
    assert out.latents is None and float(out.l0) <= 5
    out.loss.backward()
    sparse_grads = {n: p.grad.clone() for n, p in sae.named_parameters()}
    sae.zero_grad()
    # dense reference written from the definition
    x_n = x * sae.input_scale
    pre = (x_n - sae.b_dec) @ sae.W_enc + sae.b_enc
    vals, idx = pre.topk(5, dim=-1)
    f = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
    loss = (f @ sae.W_dec + sae.b_dec - x_n).pow(2).sum(-1).mean()
    loss.backward()
    assert float(out.loss.detach()) == pytest.approx(float(loss.detach()), rel=1e-5)
    for n, p in sae.named_parameters():
        torch.testing.assert_close(sparse_grads[n], p.grad, atol=1e-5, rtol=1e-4)


def test_sparse_ops_against_gather():
    g = torch.Generator().manual_seed(0)
    x, W, b, Wd = (torch.randn(*s, generator=g, dtype=torch.double, requires_grad=True)
                   for s in [(9, 6), (6, 20), (20,), (20, 6)])
    v, i = topk_encode(x, W, b, 3)
    out = sparse_decode(i, v, Wd)
    pre = x @ W + b
    v2, i2 = pre.topk(3, dim=-1)
    ref = (v2[..., None] * Wd[i2]).sum(1)
    torch.testing.assert_close(out, ref)
    assert torch.autograd.gradcheck(lambda x, W, b, Wd: sparse_decode(*reversed(topk_encode(x, W, b, 3)), Wd),
                                    (x, W, b, Wd))


@pytest.mark.parametrize("path", ["sampled", "dense", "gathered"])
def test_decoder_backward_is_the_same_on_every_path(monkeypatch, path):
    """grad of the k values: a sampled dense-dense product (CPU, float32/64), one dense product, or gathered
    decoder rows: all exact, values in the order of the (unsorted) top-k indices."""
    import mechscope.dictionary.sparse_ops as ops

    if path != "sampled":
        monkeypatch.setattr(ops, "_can_sample", lambda W, dense: False)
        monkeypatch.setattr(ops, "DENSE_DOTS_RATIO", 64 if path == "dense" else 0)
    g = torch.Generator().manual_seed(1)
    i = torch.stack([torch.randperm(40, generator=g)[:4] for _ in range(7)])   # distinct, unsorted, as topk's
    v, Wd = (torch.randn(*s, generator=g, dtype=torch.double, requires_grad=True) for s in [(7, 4), (40, 5)])
    assert torch.autograd.gradcheck(lambda v, Wd: sparse_decode(i, v, Wd), (v, Wd))
    dense = torch.randn(7, 5, generator=g, dtype=torch.double)
    torch.testing.assert_close(ops._gathered_dots(i, Wd.detach(), dense), (dense @ Wd.detach().T).gather(-1, i))


@pytest.mark.parametrize("ratio", [0, 4])
def test_backward_over_a_known_support_is_exact(monkeypatch, ratio):
    """Indices drawn from a known support (AuxK's dead latents): the backward is dense over the support's rows
    and columns when it is small (ratio 4), sparse otherwise (ratio 0); gradcheck holds on both, for the
    decoder and the encoder, including the input's gradient and columns outside the support."""
    import mechscope.dictionary.sparse_ops as ops

    monkeypatch.setattr(ops, "DENSE_SUPPORT_RATIO", ratio)
    g = torch.Generator().manual_seed(6)
    support = torch.randperm(40, generator=g)[:11].sort().values
    i = torch.stack([support[torch.randperm(11, generator=g)[:4]] for _ in range(7)])   # distinct per row
    assert (ops._support_positions(i, support, 40) is not None) == (ratio > 0)
    v, Wd, x, We, b = (torch.randn(*s, generator=g, dtype=torch.double, requires_grad=True)
                       for s in [(7, 4), (40, 5), (7, 5), (5, 40), (40,)])
    assert torch.autograd.gradcheck(lambda v, Wd: ops.sparse_decode(i, v, Wd, support=support), (v, Wd))
    assert torch.autograd.gradcheck(lambda x, We, b: ops.encode_at(x, We, b, i, support=support), (x, We, b))


def test_sampled_dots_in_float32_match_the_dense_product_without_warnings():
    import warnings

    from mechscope.dictionary.sparse_ops import _gathered_dots

    g = torch.Generator().manual_seed(2)
    i = torch.rand(64, 300, generator=g).topk(12, dim=-1, sorted=False).indices   # 300 >= 8 x 12: sampled
    W, dense = torch.randn(300, 48, generator=g), torch.randn(64, 48, generator=g)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = _gathered_dots(i, W, dense)
    torch.testing.assert_close(out, (dense.double() @ W.double().T).gather(-1, i).float(), atol=1e-4, rtol=1e-5)


def test_batch_topk_keeps_k_per_token_on_average_and_learns_threshold():
    sae, x = _sae("batch_topk", k=3)
    sae.train()
    out = sae(x)
    assert float(out.l0) == pytest.approx(3.0)
    assert float(sae.threshold) > 0
    sae.eval()
    f = sae.encode(x)
    assert bool(((f == 0) | (f > sae.threshold)).all())


def test_decoder_norm_aware_l1():
    sae, x = _sae("relu_l1", l1_coefficient=0.7, normalize_decoder=False)
    with torch.no_grad():
        sae.W_dec.mul_(torch.linspace(0.5, 2.0, 40)[:, None])
    sae.train()
    out = sae(x)
    f = sae.encode(x)
    expected = 0.7 * (f * sae.W_dec.norm(dim=-1)).sum(-1).mean()
    assert float(out.sparsity_loss) == pytest.approx(float(expected), rel=1e-5)


def test_jumprelu_pseudo_gradient_is_the_rectangle_kernel():
    sae, x = _sae("jumprelu", l0_coefficient=0.3, jumprelu_bandwidth=0.5, jumprelu_init_threshold=0.2)
    sae.train()
    out = sae(x)
    pre = ((x * sae.input_scale - sae.b_dec) @ sae.W_enc + sae.b_enc).detach()
    theta = sae.threshold.detach()
    # L0 term alone: d/dlog_theta = theta * sum_n -(1/eps) K((pre - theta)/eps) * 0.3 / n
    l0 = 0.3 * (pre > theta).float().sum(-1).mean()
    assert float(out.sparsity_loss) == pytest.approx(float(l0), rel=1e-5)
    sae.zero_grad()
    sae.sparsity_loss(None, pre).backward()
    in_window = ((pre - theta).abs() < 0.25).float()
    expected = theta * (-(1 / 0.5) * in_window).sum(0) * 0.3 / x.shape[0]
    torch.testing.assert_close(sae.log_threshold.grad, expected, atol=1e-5, rtol=1e-4)
    # activation: exact gradient for pre, kernel term -(theta/eps) K for theta
    sae.zero_grad()
    sae.activation(pre).sum().backward()
    expected_act = theta * (-(theta / 0.5) * in_window).sum(0)
    torch.testing.assert_close(sae.log_threshold.grad, expected_act, atol=1e-5, rtol=1e-4)


def test_auxk_only_with_dead_latents():
    sae, x = _sae("topk")
    sae.train()
    assert float(sae(x).auxk_loss) == 0.0
    dead = torch.zeros(40, dtype=torch.bool)
    dead[:10] = True
    out = sae(x, dead_mask=dead)
    assert float(out.auxk_loss) > 0
    out.loss.backward()
    # only dead columns receive an AuxK gradient beyond the main top-k ones; live dead columns get some
    assert sae.W_enc.grad[:, :10].abs().sum() > 0


@pytest.mark.parametrize("ratio", [0, 4])   # the chosen latents' backward: sparse, or dense over the dead ones
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sparse_auxk_equals_the_dense_loss_and_its_gradients(monkeypatch, dtype, ratio):
    """The TopK SAE's AuxK picks dead latents from the encoder's own pre-activations and backpropagates only
    through the chosen k_aux: the same loss and gradients as a fresh [n n_dead] product over the dead columns."""
    import mechscope.dictionary.sparse_ops as ops
    from mechscope.dictionary.auxk import auxk_loss, sparse_auxk_loss

    monkeypatch.setattr(ops, "DENSE_SUPPORT_RATIO", ratio)

    sae, x = _sae("topk", auxk_k=6)
    sae = sae.to(dtype)
    x_in = (x.to(dtype) * sae.input_scale - sae.b_dec).detach()
    dead = torch.zeros(40, dtype=torch.bool)
    dead[torch.randperm(40, generator=torch.Generator().manual_seed(4))[:15]] = True
    residual = torch.randn(64, 12, generator=torch.Generator().manual_seed(5), dtype=dtype)
    grads = []
    for sparse in (True, False):
        sae.zero_grad()
        if sparse:
            _, _, pre = topk_encode(x_in, sae.W_enc, sae.b_enc, sae.cfg.k, keep_pre=True)
            loss = sparse_auxk_loss(sae, x_in, pre, dead, residual)
        else:
            idx = dead.nonzero().squeeze(-1)
            loss = auxk_loss(sae, torch.addmm(sae.b_enc[idx], x_in, sae.W_enc[:, idx]), idx, residual)
        loss.backward()
        grads.append((loss.detach(), sae.W_enc.grad.clone(), sae.b_enc.grad.clone(), sae.W_dec.grad.clone()))
    tol = {"rtol": 1e-10, "atol": 1e-10} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-5}
    for got, want in zip(*grads, strict=True):
        torch.testing.assert_close(got, want, **tol)
    assert grads[0][1][:, ~dead].abs().sum() == 0 and grads[0][1][:, dead].abs().sum() > 0   # only dead columns


def test_unit_norm_projection():
    sae, x = _sae("relu_l1")
    sae(x).loss.backward()
    sae.remove_gradient_parallel_to_decoder_rows()
    assert float((sae.W_dec.grad * sae.W_dec).sum(-1).abs().max()) < 1e-5
    with torch.no_grad():
        sae.W_dec.mul_(3)
    sae.normalize_decoder_rows()
    torch.testing.assert_close(sae.decoder_norms, torch.ones(40))


def test_geometric_median_beats_mean_and_is_optimal():
    g = torch.Generator().manual_seed(0)
    pts = torch.cat([torch.randn(50, 3, generator=g), torch.full((5, 3), 100.0)])
    med = geometric_median(pts)

    def cost(m):
        return float((pts - m).norm(dim=-1).sum())

    assert cost(med) < cost(pts.mean(0))
    for _ in range(20):  # no random nearby point is better
        assert cost(med) <= cost(med + 0.01 * torch.randn(3, generator=g)) + 1e-4
    assert float(med.norm()) < 1.0  # not dragged towards the outliers


def test_latent_stats_dead_and_dense():
    s = LatentStats(3)
    s.update(torch.tensor([5, 0, 100]), 100)
    s.update(torch.tensor([0, 0, 100]), 100)
    assert s.dead_mask(150).tolist() == [False, True, False]
    assert s.dead_mask(100).tolist() == [True, True, False]
    assert s.dense_mask(0.5).tolist() == [False, False, True]
    assert s.frequencies().tolist() == pytest.approx([0.025, 0, 1.0])


def test_bad_config_names_the_fix():
    with pytest.raises(InputError, match="architecture"):
        SAEConfig(d_in=4, architecture="gated")
    with pytest.raises(InputError, match="k="):
        SAEConfig(d_in=4, d_sae=8, k=9)
    assert SAEConfig(d_in=4).d_sae == 64
    assert math.isclose(SAEConfig(d_in=4).auxk_coefficient, 1 / 32)
