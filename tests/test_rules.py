"""Every rule on Linear and Conv2d against a slow dense-matrix re-implementation that follows the definitions.

The reference builds the explicit weight matrix ``w_ij`` of a layer (for Conv2d by explicit loops over the
receptive fields, with stride, padding, dilation and groups), forms every contribution ``(N, I, J)`` as the
definition in docs/lrp-rules.md says, and never uses a transposed op. float64 throughout.
"""

import functools
import itertools

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import lrpkit
from lrpkit.engine.weighted import Conv, WeightedLayer, stab
from lrpkit.rules import AlphaBeta, Epsilon, Flat, Gamma, Simple, WSquare, ZBox, ZPlus

EPS = 1e-9
F64 = torch.float64


# -- the dense reference -------------------------------------------------------------------------------


def linear_matrix(layer: nn.Linear, in_shape):
    """(w_ij as (I, J), connectivity mask (I, J))."""
    w = layer.weight.detach().T.clone()
    return w, torch.ones_like(w)


def conv_matrix(conv: nn.Conv2d, in_shape):
    """The explicit (I, J) matrix of a Conv2d, built by looping over every output and its receptive field."""
    C, H, W = in_shape
    O, per_group, kh, kw = conv.weight.shape
    (sh, sw), (ph, pw), (dh, dw) = conv.stride, conv.padding, conv.dilation
    Ho, Wo = (H + 2 * ph - dh * (kh - 1) - 1) // sh + 1, (W + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    matrix, mask = torch.zeros(C * H * W, O * Ho * Wo, dtype=F64), torch.zeros(C * H * W, O * Ho * Wo, dtype=F64)
    groups_out = O // conv.groups
    for o, y, x in itertools.product(range(O), range(Ho), range(Wo)):
        j = (o * Ho + y) * Wo + x
        for cl, ky, kx in itertools.product(range(per_group), range(kh), range(kw)):
            c, iy, ix = (o // groups_out) * per_group + cl, y * sh - ph + ky * dh, x * sw - pw + kx * dw
            if 0 <= iy < H and 0 <= ix < W:
                i = (c * H + iy) * W + ix
                matrix[i, j] += conv.weight[o, cl, ky, kx].detach()
                mask[i, j] = 1.0
    return matrix, mask


def reference(rule, a, w, mask, b, R, low=None, high=None):
    """``R_in (N, I)`` from ``R (N, J)`` by the definitions; ``a (N, I)``, ``w``/``mask`` ``(I, J)``, ``b (J,)``."""
    A = a[:, :, None]
    wp, wn = w.clamp(min=0), w.clamp(max=0)
    ap, an = A.clamp(min=0), A.clamp(max=0)
    bias = b if getattr(rule, "bias", False) else torch.zeros_like(b)
    out = a @ w + b  # the real output, bias included
    if isinstance(rule, (Simple, Epsilon)):
        contrib = A * w
        total = contrib.sum(1) + bias
        denominator = total + 1e-12 if isinstance(rule, Simple) else stab(total, rule.epsilon)
        return (contrib / denominator[:, None, :] * R[:, None, :]).sum(2)
    if isinstance(rule, AlphaBeta):
        p, n = ap * wp + an * wn, ap * wn + an * wp
        P, N = p.sum(1) + bias.clamp(min=0), n.sum(1) + bias.clamp(max=0)
        share = rule.alpha * p / stab(P, EPS)[:, None, :] - rule.beta * n / stab(N, EPS)[:, None, :]
        return (share * R[:, None, :]).sum(2)
    if isinstance(rule, ZBox):
        q = A * w - low.reshape(1, -1, 1) * wp - high.reshape(1, -1, 1) * wn
        total = q.sum(1) + bias
        return (q / stab(total, EPS)[:, None, :] * R[:, None, :]).sum(2)
    if isinstance(rule, (WSquare, Flat)):
        q = w * w if isinstance(rule, WSquare) else mask
        return (q / stab(q.sum(0), EPS) * R[:, None, :]).sum(2)
    if isinstance(rule, Gamma):
        g = rule.gamma
        u = ap * (w + g * wp) + an * (w + g * wn)
        v = ap * (w + g * wn) + an * (w + g * wp)
        U = u.sum(1) + (bias + g * bias.clamp(min=0))
        V = v.sum(1) + (bias + g * bias.clamp(max=0))
        share = (out > 0)[:, None, :] * u / stab(U, EPS)[:, None, :] + (out < 0)[:, None, :] * v / stab(V, EPS)[
            :, None, :
        ]
        return (share * R[:, None, :]).sum(2)
    raise AssertionError(rule)


# -- the engine on one layer ----------------------------------------------------------------------------


RULES = [
    Simple(),
    Simple(bias=True),
    Epsilon(0.1),
    Epsilon(1e-3, bias=True),
    ZPlus(),
    ZPlus(bias=True),
    AlphaBeta(2.0, 1.0),
    AlphaBeta(1.5, 0.5, bias=True),
    AlphaBeta(3.0),
    WSquare(),
    Flat(),
    Gamma(0.25),
    Gamma(1.0, bias=True),
    ZBox(),
    ZBox(bias=True),
]
CONVS = [
    dict(in_channels=2, out_channels=3, kernel_size=3),
    dict(in_channels=2, out_channels=3, kernel_size=3, stride=2, padding=1),
    dict(in_channels=3, out_channels=2, kernel_size=(2, 3), stride=(2, 1), padding=(1, 0), dilation=2),
    dict(in_channels=4, out_channels=2, kernel_size=3, padding=2, groups=2),
]


def engine(model, a, R_filter, rule, low=None, high=None):
    """Input relevance of the one weighted layer of ``model`` with starting relevance ``out * R_filter``."""
    rule = ZBox(low, high, bias=rule.bias) if isinstance(rule, ZBox) else rule
    return lrpkit.layerwise_lrp(model, a, R_filter, rule)


def check(model, layer, a, rule, matrix, mask, seed):
    gen = torch.Generator().manual_seed(seed)
    out = model(a)
    filt = torch.randn(out.shape, generator=gen, dtype=F64)
    low = -1.5 - torch.rand(a.shape[1:], generator=gen, dtype=F64)
    high = 1.5 + torch.rand(a.shape[1:], generator=gen, dtype=F64)
    R = engine(model, a, filt, rule, low, high)
    b = layer.bias.detach() if layer.bias is not None else torch.zeros(matrix.shape[1], dtype=F64)
    b = b.repeat_interleave(matrix.shape[1] // b.numel())
    expected = reference(rule, a.flatten(1), matrix, mask, b, out.flatten(1) * filt, low.flatten(), high.flatten())
    assert R[-1].shape == out.shape and torch.allclose(R[-1], out * filt)
    assert R[0].shape == a.shape
    torch.testing.assert_close(R[0].flatten(1), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("sign", ["either", "nonneg"])
@pytest.mark.parametrize("rule", RULES, ids=repr)
def test_linear_matches_dense_reference(rule, sign):
    torch.manual_seed(0)
    layer = nn.Linear(7, 5).double()
    a = torch.randn(4, 7, dtype=F64)
    a = a.abs() if sign == "nonneg" else a
    matrix, mask = linear_matrix(layer, (7,))
    check(nn.Sequential(layer), layer, a, rule, matrix, mask, seed=1)


@pytest.mark.parametrize("sign", ["either", "nonneg"])
@pytest.mark.parametrize("rule", RULES, ids=repr)
@pytest.mark.parametrize("geometry", range(len(CONVS)))
def test_conv_matches_dense_reference(geometry, rule, sign):
    conv, a, matrix, mask = conv_case(geometry)
    a = a.abs() if sign == "nonneg" else a
    check(nn.Sequential(conv, nn.Flatten()), conv, a, rule, matrix, mask, seed=geometry)


@functools.cache
def conv_case(geometry):
    torch.manual_seed(geometry)
    conv = nn.Conv2d(**CONVS[geometry]).double()
    a = torch.randn(3, conv.in_channels, 7, 6, dtype=F64)
    return (conv, a, *conv_matrix(conv, a.shape[1:]))


def test_dense_layer_on_images_reshapes_relevance():
    """lrpkit's Dense flattens rank > 2 inputs; the relevance comes back in the input's shape."""
    torch.manual_seed(3)
    layer = lrpkit.layers.Dense(2 * 3 * 3, 4).double()
    a = torch.randn(2, 2, 3, 3, dtype=F64)
    matrix, mask = linear_matrix(layer, (18,))
    for rule in (Simple(), AlphaBeta(2.0), Gamma(0.5), Flat()):
        check(nn.Sequential(layer), layer, a, rule, matrix, mask, seed=4)


def test_reference_conv_matrix_is_the_convolution():
    """The test's own explicit matrix reproduces the convolution (so the reference is about the right layer)."""
    for i, params in enumerate(CONVS):
        torch.manual_seed(i)
        conv = nn.Conv2d(**params).double()
        a = torch.randn(2, conv.in_channels, 7, 6, dtype=F64)
        matrix, _ = conv_matrix(conv, a.shape[1:])
        expected = conv(a).flatten(1) - conv.bias.repeat_interleave(matrix.shape[1] // conv.out_channels)
        torch.testing.assert_close(a.flatten(1) @ matrix, expected)


def test_zplus_equals_alphabeta_1_0():
    torch.manual_seed(5)
    model = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 25, 4)).double()
    a = torch.randn(3, 2, 5, 5, dtype=F64)
    for bias in (False, True):
        R1 = lrpkit.lrp(model, a, "pred", ZPlus(bias=bias))
        R2 = lrpkit.lrp(model, a, "pred", AlphaBeta(1.0, 0.0, bias=bias))
        assert torch.equal(R1, R2)


def test_stabiliser_keeps_sign_and_moves_zero_up():
    d = torch.tensor([-2.0, 0.0, 3.0, -0.0])
    assert stab(d, 0.5).tolist() == [-2.5, 0.5, 3.5, -0.5]  # IEEE -0 keeps its sign bit (documented)


def layer_of(conv: nn.Module) -> WeightedLayer:
    """The engine's layer of a torch conv module (any dimension, transposed or not)."""
    transposed = isinstance(conv, nn.modules.conv._ConvTransposeNd)
    geometry = Conv(conv.stride, conv.padding, conv.dilation, conv.groups, transposed, conv.output_padding)
    return WeightedLayer.build(conv.weight, conv.bias, geometry)


def test_weighted_layer_caches_modified_weights_and_leaves_module_alone():
    conv = nn.Conv2d(2, 3, 3)
    before = conv.weight.detach().clone()
    layer = layer_of(conv)
    assert layer.positive is layer.positive and layer.negative is layer.negative
    assert layer.gamma_weights(0.25)[0] is layer.gamma_weights(0.25)[0]
    torch.testing.assert_close(layer.positive + layer.negative, conv.weight.detach())
    assert torch.equal(conv.weight, before)
    assert "Conv2d" in repr(layer) and "(3, 2, 3, 3)" in repr(layer)


def test_transposed_op_is_the_adjoint_of_the_forward_op():
    """<forward(x), s> == <x, backward(s)> for every geometry (also odd sizes that need output_padding), for
    convolutions in 1, 2 and 3 dimensions and transposed convolutions."""
    modules = [nn.Conv2d(**params) for params in CONVS] + [
        nn.Conv1d(4, 6, 3, stride=2, padding=1, groups=2),
        nn.Conv3d(2, 3, (2, 3, 1), stride=(1, 2, 1), padding=(1, 0, 0), dilation=(1, 1, 2)),
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2),
        nn.ConvTranspose1d(3, 2, 4, stride=3, dilation=2),
        nn.ConvTranspose3d(2, 2, 2, stride=2),
    ]
    for i, module in enumerate(modules):
        torch.manual_seed(i)
        layer = layer_of(module.double())
        for size in (7, 8):
            x = torch.randn(2, module.in_channels, *[size + d for d in range(len(module.stride))], dtype=F64)
            y = layer.forward(x, layer.weight)
            s = torch.randn(3, *y.shape, dtype=F64)
            c = layer.backward(s, layer.weight, tuple(x.shape))
            assert c.shape == (3, *x.shape)
            dims = tuple(range(1, x.dim() + 1))
            torch.testing.assert_close((y * s).sum(dims), (x * c).sum(dims))


def test_alphabeta_keeps_a_negative_part_that_rounding_swallows_in_z_minus_p():
    """float32: z - P loses a negative sum 1e-9 times smaller than P; the engine recomputes it there."""
    layer = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[1.0, -1.0]]))
    a = torch.tensor([[1e4, 1e-5]])
    R = lrpkit.lrp(nn.Sequential(layer), a, 0, AlphaBeta(2.0, 1.0))
    out, n = float(layer(a).detach()), -float(a[0, 1])
    torch.testing.assert_close(R, torch.tensor([[2.0 * out, -1.0 * out * n / (n - EPS)]]))


def test_alphabeta_without_negative_contributions_shares_alpha_times_zplus():
    torch.manual_seed(9)
    layer = nn.Linear(50, 4)
    with torch.no_grad():
        layer.weight.abs_()
    a = torch.rand(3, 50)
    ab = lrpkit.lrp(nn.Sequential(layer), a, "pred", AlphaBeta(2.0, 1.0))
    torch.testing.assert_close(ab, 2.0 * lrpkit.lrp(nn.Sequential(layer), a, "pred", ZPlus()))


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_zb_output_whose_every_q_is_zero_passes_exactly_nothing(dtype):
    """On a border filled with the low bound, a positive 1x1 filter has q_ij = (a - l) w+ = 0 exactly: its
    R / stab(0) is ~1e9 R and must meet exact zeros, not cancel against another huge term."""
    conv = nn.Conv2d(1, 2, 1, bias=False).to(dtype)
    with torch.no_grad():
        conv.weight.copy_(torch.tensor([0.7, -0.4]).view(2, 1, 1, 1))
    a = F.pad(torch.linspace(-0.9, 0.9, 9, dtype=dtype).view(1, 1, 3, 3), (1, 1, 1, 1), value=-1.0)
    filt = torch.linspace(0.5, 1.5, 50, dtype=dtype).view(1, 50)
    R = lrpkit.layerwise_lrp(nn.Sequential(conv, nn.Flatten()), a, filt, ZBox(-1.0, 1.0))
    matrix, mask = conv_matrix(conv.double(), (1, 5, 5))
    low, high = -torch.ones(25, dtype=F64), torch.ones(25, dtype=F64)
    expected = reference(
        ZBox(), a.double().flatten(1), matrix, mask, torch.zeros(50, dtype=F64), R[-1].double(), low, high
    )
    tolerance = 1e-12 if dtype == F64 else 1e-6
    torch.testing.assert_close(R[0].double().flatten(1), expected, rtol=tolerance, atol=tolerance)
