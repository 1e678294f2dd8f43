"""Any captured model: residual, dense, inverted-residual and gated blocks, functional forwards, random graphs.

Three independent checks on every block: bias-free conservation, the NumPy twin (every rule and preset, per
node), and an oracle written by nobody: LRP-0 with the biases included equals gradient x input from autograd
on graphs of ReLUs, Linear-type layers, sums, concatenation, pooling and moves.
"""

from __future__ import annotations

import copy
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import HealthCheck, given, settings
from torch import nn

import lrpkit
from blocks import BLOCKS, F64, RELU_ONLY, graphs, make, randomise, zero_biases
from lrpkit.composites import PRESETS, resolve
from lrpkit.engine import walk, weighted
from lrpkit.engine.canonize import canonize
from lrpkit.engine.walk import graph_of
from lrpkit.errors import SpecError
from lrpkit.reference import check_model, from_model
from lrpkit.rules import Epsilon, Proportional, Simple

PROPERTY = settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LRP0 = {
    "linear": Simple(),
    "conv": Simple(),
    "sum": Proportional(1e-12),
    "avg_pool": Proportional(1e-12),
    "opaque": Epsilon(1e-12),
    "norm": Epsilon(1e-12),
}
"""LRP-0 with the 1e-12 stabiliser on sums, average pooling and opaque modules too."""
GRADIENT_X_INPUT = {
    "linear": Epsilon(1e-30, bias=True),
    "conv": Epsilon(1e-30, bias=True),
    "sum": Proportional(1e-30, bias=True),
    "avg_pool": Proportional(1e-30),
}
"""LRP-0 with the biases included, as the epsilon rule for epsilon -> 0 (LRP-0's own 1e-12 would show)."""
RULES = [
    "simple",
    "epsilon",
    ["epsilon", 0.1, True],
    "zplus",
    ["ab", 2.0],
    ["ab", 3.0, 2.0, True],
    "gamma",
    "ww",
    "flat",
]
METHODS = [*RULES, ["zb", -4.0, 4.0], *sorted(PRESETS)]


def inputs(seed: int = 0, n: int = 3) -> torch.Tensor:
    return torch.randn(n, 3, 8, 8, generator=torch.Generator().manual_seed(seed), dtype=F64)


def gradient_x_input(model: nn.Module, x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    x = x.clone().requires_grad_()
    (grad,) = torch.autograd.grad(model(x).gather(1, target[:, None]).sum(), x)
    return (grad * x).detach()


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).abs().max() / b.abs().max()) if not b.requires_grad else relative(a, b.detach())


@pytest.mark.parametrize("name", BLOCKS)
def test_bias_free_lrp0_conserves(name):
    model = zero_biases(make(name))
    x = inputs()
    R = lrpkit.layerwise_lrp(model, x, "pred", LRP0)
    top = next(reversed(R.values())).flatten(1).sum(1)
    heatmap = R[next(iter(R))].flatten(1).sum(1)
    assert float(((heatmap - top).abs() / top.abs()).max()) <= 1e-6


@pytest.mark.parametrize("name", RELU_ONLY)
def test_lrp0_with_biases_is_gradient_times_input(name):
    model, x, target = make(name), inputs(), torch.tensor([0, 3, 1])
    assert relative(lrpkit.lrp(model, x, target, GRADIENT_X_INPUT), gradient_x_input(model, x, target)) <= 1e-10


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("method", METHODS, ids=str)
def test_engine_matches_the_numpy_twin(name, method):
    model = make(name)
    check_model(model, inputs(), method, "pred", atol=1e-10, rtol=1e-10, bounds=(-4.0, 4.0))


def test_every_target_at_once_equals_one_target_at_a_time():
    model, x = make("mobilenet_v3"), inputs()
    every = lrpkit.layerwise_lrp(model, x, "all", "epsilon_gamma_box", bounds=(-4.0, 4.0))
    for c in range(4):
        single = lrpkit.layerwise_lrp(model, x, c, "epsilon_gamma_box", bounds=(-4.0, 4.0))
        for name, R in single.items():
            torch.testing.assert_close(every[name][:, c], R, rtol=1e-12, atol=1e-15)
    chunked = lrpkit.lrp(model, x, "all", "epsilon_gamma_box", bounds=(-4.0, 4.0), memory=1)  # one class a chunk
    torch.testing.assert_close(chunked, every["x"], rtol=0, atol=0)


@pytest.mark.parametrize("name", BLOCKS)
def test_the_model_is_left_untouched(name):
    model = make(name).train()
    flags = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    versions = [p._version for p in model.parameters()]
    x = inputs()
    lrpkit.lrp(model, x, "all", "epsilon_plus")
    assert [m.training for m in model.modules()] == flags
    assert [p._version for p in model.parameters()] == versions
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules())


@pytest.mark.parametrize("name", BLOCKS)
def test_merging_batchnorm_leaves_the_output_unchanged(name):
    model, x = make(name), inputs()
    graph, _ = graph_of(model, x)
    assert not any(n.op == "batch_norm" and graph.by_name[n.inputs[0]].op == "conv" for n in graph.nodes)
    twin = from_model(model, x)  # runs the canonized graph with its own NumPy code
    logits = twin.values(x.numpy())[graph.output]
    torch.testing.assert_close(torch.from_numpy(logits), model(x).detach(), rtol=1e-12, atol=1e-12)
    assert canonize(graph) == graph  # canonizing twice changes nothing


# -- random graphs -------------------------------------------------------------------------------------------------


@PROPERTY
@given(graphs())
def test_random_graphs_match_the_twin_for_every_method(case):
    model, x = case
    for method in METHODS:
        check_model(model, x, method, "pred", atol=1e-10, rtol=1e-10, bounds=(-4.0, 4.0))


@PROPERTY
@given(graphs(kinds=["residual", "projection", "concat", "depthwise"]))
def test_random_relu_graphs_lrp0_is_gradient_times_input(case):
    model, x = case
    target = torch.tensor([2, 0])
    assert relative(lrpkit.lrp(model, x, target, GRADIENT_X_INPUT), gradient_x_input(model, x, target)) <= 1e-10


@PROPERTY
@given(graphs())
def test_random_graphs_conserve_without_biases(case):
    model, x = case
    zero_biases(model)
    R = lrpkit.lrp(model, x, "pred", LRP0)
    top = model(x).max(1).values.detach()
    assert float(((R.flatten(1).sum(1) - top).abs() / top.abs()).max()) <= 1e-6


@PROPERTY
@given(graphs())
def test_the_forward_keeps_only_what_the_walk_reads_and_relevance_is_unchanged(case):
    model, x = case
    everything = lambda prepared, plan: frozenset(n.name for n in prepared.graph.nodes)  # noqa: E731
    for method in METHODS:
        options = {"bounds": (-4.0, 4.0)}
        lean = lrpkit.lrp(model, x, "pred", method, **options)
        with mock.patch.object(walk, "_kept", everything):
            full = lrpkit.lrp(model, x, "pred", method, **options)
        assert torch.equal(lean, full), method


def test_values_a_step_does_not_read_are_dropped_after_the_forward():
    model, x = make("bottleneck"), inputs()
    prepared, args, kwargs = walk._prepared_call(model, x)
    graph = prepared.graph
    plan = resolve("epsilon_plus", graph.relevant, graph.first, None, {})
    keep = walk._kept(prepared, plan)
    with torch.inference_mode():
        trace = walk._record(prepared, model, args, kwargs, plan.rules, keep)
    computed = {n.name for n in graph.nodes if n.op not in ("input", "constant")}
    kept = {name for name, value in trace.values.items() if value is not None and name in computed}
    assert kept <= keep and kept < computed
    read_by_none = {n.name for n in graph.relevant if n.op in ("activation", "add", "reshape")} - keep
    assert read_by_none and not (read_by_none & kept)  # read by no step (moves and ReLUs before a sum)
    assert all(trace.shapes[name] == graph.by_name[name].shape for name in read_by_none)


class Masked(nn.Module):
    """A causal mask built in forward from ``arange`` (the same at every call), a parameter-made scale (read at
    every call), noise from ``torch.rand`` and ``cauchy_`` (new at every call), and a bias of zeros filled in place
    where the padding mask (held fixed, given at each call) says."""

    def __init__(self) -> None:
        super().__init__()
        self.mix = nn.Linear(5, 5, dtype=F64)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        n = x.shape[-1]
        causal = torch.arange(n)[:, None] >= torch.arange(n)[None, :]
        scale = self.mix.weight.sum() * torch.ones(n, dtype=x.dtype)
        mixed = (x[:, None, :] * causal.to(x.dtype)).sum(-1) * scale
        noise = torch.rand(n, dtype=x.dtype) + torch.empty(n, dtype=x.dtype).cauchy_()
        bias = torch.zeros(n, dtype=x.dtype)
        bias.masked_fill_(pad, -5.0)
        return self.mix(mixed + 0.0 * noise + bias)


def test_values_made_from_literals_alone_are_made_once_and_reused():
    model, x = Masked(), torch.randn(3, 5, dtype=F64)
    pads = torch.tensor([False, True, False, False, True]), torch.zeros(5, dtype=torch.bool)
    call = {"kwargs": {"pad": pads[0]}, "position": "x"}
    first = lrpkit.lrp(model, x, 0, "epsilon", **call)
    prepared, graph = walk._prepared_call(model, x, **call)[0], walk._prepared_call(model, x, **call)[0].graph
    assert prepared.fixed and set(prepared.fixed) <= graph.fixed
    assert any(graph.by_name[name].op == "call" for name in graph.fixed)  # arange and the comparison
    targets = {name: str(graph.by_name[name].params.get("target")) for name in graph.by_name}
    random = {name for name, target in targets.items() if "rand" in target or "cauchy" in target}
    written = {name for name, target in targets.items() if "zeros" in target or "masked_fill" in target}
    parameter_made = {n.name for n in graph.nodes if n.op == "sum" and n.name not in graph.signals}
    for made_each_call in (random, written, parameter_made):
        assert made_each_call and not (made_each_call & graph.fixed)
    with torch.no_grad():
        model.mix.weight.mul_(2.0)  # the parameter-made scale follows the new weights
    for pad in pads:  # the bias filled in place follows each call's padding mask
        call = {"kwargs": {"pad": pad}, "position": "x"}
        again = lrpkit.lrp(model, x, 0, "epsilon", **call)
        fresh = lrpkit.lrp(copy.deepcopy(model), x, 0, "epsilon", **call)  # a new capture, nothing reused
        assert torch.allclose(again, fresh, rtol=1e-12, atol=0)
        assert not torch.allclose(first, again)


def test_lrp_keeps_no_relevance_but_the_inputs():
    model, x = make("bottleneck"), inputs()
    assert list(walk.explain(model, x, "pred", "epsilon_plus").nodes) == [walk.graph_of(model, x)[0].input]
    everything = walk.explain(model, x, "all", "epsilon_plus", keep=True).nodes
    assert len(everything) > 10


class NormThenPermute(nn.Module):
    """GroupNorm on channels, then channels last for a Linear; LayerNorm over two dims, then transposed: the
    relevance reaches both norms permuted (not contiguous)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv, self.group, self.linear = nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.Linear(8, 6)
        self.layer, self.out = nn.LayerNorm((4, 6)), nn.Linear(4, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(self.group(self.conv(x)).permute(0, 2, 3, 1)).flatten(1, 2)[:, :4]  # (N, 4, 6)
        return self.out(self.layer(h).transpose(1, 2)).sum(1)


@pytest.mark.parametrize("method", ["epsilon", "attnlrp", "epsilon_plus"])
def test_norms_take_relevance_that_arrives_permuted(method):
    model = randomise(NormThenPermute().double().eval())
    check_model(model, torch.randn(2, 3, 5, 5, dtype=F64), method, atol=1e-10, rtol=1e-10)


# -- what else graphs bring ------------------------------------------------------------------------------------------


class TwoInputs(nn.Module):
    """Several inputs, a dict output."""

    def __init__(self) -> None:
        super().__init__()
        self.image, self.side = nn.Linear(4, 3), nn.Linear(2, 3)

    def forward(self, x, side, *, scale=1.0):
        hidden = F.relu(self.image(x) + self.side(side)) * scale
        return {"features": hidden, "logits": hidden.sum(1, keepdim=True) * torch.ones(1, 2, dtype=x.dtype)}


def test_several_inputs_and_outputs_explain_one_the_others_held_fixed():
    model = TwoInputs().double()
    x, side = torch.rand(2, 4, dtype=F64), torch.rand(2, 2, dtype=F64)
    R = lrpkit.lrp(model, x, 0, "simple", args=(side,), kwargs={"scale": 2.0})  # "logits" by default
    assert R.shape == x.shape
    R_side = lrpkit.lrp(model, side, 0, "simple", args=(x,), position=1, kwargs={"scale": 2.0})
    assert R_side.shape == side.shape
    features = lrpkit.lrp(model, x, torch.ones(3, dtype=F64), "simple", args=(side,), output="features")
    assert features.shape == x.shape
    with pytest.raises(SpecError, match="does not name one of the model's outputs"):
        lrpkit.lrp(model, x, 0, args=(side,), output="nope")


def test_targets_as_filters_of_any_output_shape():
    """A segmentation-like output (N, C, H, W): a float filter of one sample's output selects pixels."""
    torch.manual_seed(1)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.ConvTranspose2d(4, 2, 2, stride=2)).double()
    x = torch.rand(2, 3, 4, 4, dtype=F64)
    mask = torch.zeros(2, 8, 8, dtype=F64)
    mask[1, 2:4, 2:4] = 1.0  # class 1 in a 2x2 patch
    R = lrpkit.layerwise_lrp(zero_biases(model), x, mask, "simple")
    torch.testing.assert_close(R[0].flatten(1).sum(1), (model(x) * mask).flatten(1).sum(1))


def test_a_composite_by_kind_first_and_name():
    model, x = make("basic"), inputs()
    composite = {"conv": "gamma", "linear": "epsilon", "first": ["zb", -4.0, 4.0], "blocks.1.*": Epsilon(0.25)}
    plan = lrpkit.composites.resolve(composite, *_nodes(model, x))
    by_module = {}
    for name, rule in plan.rules.items():
        by_module.setdefault(rule.name, []).append(name)
    assert plan.rules["conv2d"].name == "zb"  # the stem: first layer
    assert {plan.rules[n].name for n in by_module["epsilon"]} == {"epsilon"}
    graph, _ = graph_of(model, x)
    blocks1 = {n.name for n in graph.nodes if n.module.startswith("blocks.1.") and n.op == "conv"}
    assert blocks1 and all(plan.rules[n] == Epsilon(0.25) for n in blocks1)
    R = lrpkit.lrp(model, x, "pred", composite)
    assert torch.isfinite(R).all()
    with pytest.raises(SpecError, match="matches no node"):
        lrpkit.lrp(model, x, "pred", {"layer9.*": "epsilon"})
    with pytest.raises(SpecError, match="cannot apply to 'conv'"):
        lrpkit.lrp(model, x, "pred", {"conv": "winner"})


def _nodes(model, x):
    graph, _ = graph_of(model, x)
    return graph.relevant, graph.first


def test_bounds_in_pixel_space_pass_through_a_normalisation_in_forward():
    """zB bounds given for the raw input equal bounds given for the normalised input of the first conv."""

    class Normalised(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(3, 4, 3), nn.Linear(4 * 36, 2)
            self.register_buffer("mean", torch.tensor([0.5, 0.4, 0.3]).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor([0.2, 0.25, 0.5]).view(1, 3, 1, 1))

        def forward(self, x):
            return self.fc(F.relu(self.conv((x - self.mean) / self.std)).flatten(1))

    torch.manual_seed(2)
    model, x = Normalised().double(), torch.rand(2, 3, 8, 8, dtype=F64)
    carried = lrpkit.lrp(model, x, 1, "epsilon_gamma_box", bounds=(0.0, 1.0))
    low, high = (0 - model.mean) / model.std, (1 - model.mean) / model.std
    explicit = lrpkit.lrp(model, x, 1, {"first": lrpkit.ZBox(low[0], high[0]), "conv": "gamma", "linear": "epsilon"})
    torch.testing.assert_close(carried, explicit)


def test_relevance_blow_up_is_named():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(4, 4, bias=False), nn.Linear(4, 2, bias=False)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.tensor([[1.0, -1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]], dtype=F64))
        model[0].weight.copy_(
            torch.tensor([[1.0, 0, 0, 0], [1 - 1e-15, 0, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]], dtype=F64)
        )
    x = torch.tensor([[1.0, 0.5, 0.5, 0.5]], dtype=F64)
    with pytest.warns(lrpkit.RelevanceWarning, match=r"node 'linear_1' .* reaches .* larger epsilon"):
        lrpkit.lrp(model, x, 0, Epsilon(1e-30))


def test_a_copy_of_the_model_gives_the_same_relevance_and_new_weights_are_read():
    model, x = make("dense"), inputs()
    first = lrpkit.lrp(model, x, "pred", "epsilon_plus")
    torch.testing.assert_close(lrpkit.lrp(copy.deepcopy(model), x, "pred", "epsilon_plus"), first)
    with torch.no_grad():
        model.fc.weight.mul_(2.0)  # same capture, new weights: as a fresh capture of the changed model
    changed = lrpkit.lrp(model, x, "pred", "epsilon_plus")
    torch.testing.assert_close(changed, lrpkit.lrp(copy.deepcopy(model), x, "pred", "epsilon_plus"))
    assert not torch.allclose(changed, first)


def test_an_unmergeable_batchnorm_after_a_transposed_conv_is_the_identity():
    torch.manual_seed(4)
    model = nn.Sequential(nn.ConvTranspose2d(2, 3, 2, stride=2), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(48, 2))
    model = zero_biases(model.double().eval())
    R = lrpkit.layerwise_lrp(model, torch.rand(2, 2, 2, 2, dtype=F64), 0, LRP0)
    torch.testing.assert_close(R[1], R[2])  # relevance passes the BatchNorm unchanged
    torch.testing.assert_close(R[0].flatten(1).sum(1), R[-1].sum(1))


class Scaled(nn.Module):
    """A user's own layer whose forward uses an op without a rule (cumsum), linear in x."""

    def forward(self, x):
        return torch.cumsum(x, 1) * 0.5


class WithScaled(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1, self.scaled, self.fc2 = nn.Linear(4, 5), Scaled(), nn.Linear(5, 2)

    def forward(self, x):
        return self.fc2(F.relu(self.scaled(self.fc1(x))))


def test_an_opaque_submodule_is_one_node_with_the_epsilon_rule_of_its_linear_map():
    torch.manual_seed(5)
    model = zero_biases(WithScaled().double())
    x = torch.rand(3, 4, dtype=F64)
    with pytest.raises(SpecError, match=r"opaque=\['path'\]"):
        lrpkit.lrp(model, x, 0)
    R = lrpkit.layerwise_lrp(model, x, 0, LRP0, opaque=["scaled"])
    assert "scaled" in R  # the module is one node, named by its path
    torch.testing.assert_close(R["x"].sum(1), R[next(reversed(R))].sum(1))  # cumsum is linear: conserved
    passed = lrpkit.layerwise_lrp(model, x, 0, {**LRP0, "scaled": lrpkit.Pass()}, opaque=["scaled"])
    torch.testing.assert_close(passed["fc1" if "fc1" in passed else "linear"], passed["scaled"])
    with pytest.raises(SpecError, match="not a submodule"):
        lrpkit.lrp(model, x, 0, opaque=["nope"])


def test_registering_a_module_class_or_an_op(monkeypatch):
    from lrpkit.engine import extend

    torch.manual_seed(6)
    model, x = WithScaled().double(), torch.rand(3, 4, dtype=F64)
    monkeypatch.setattr(extend, "MODULES", set())
    monkeypatch.setattr(extend, "OPS", {})
    lrpkit.register_module(Scaled)
    by_class = lrpkit.lrp(model, x, 0, "epsilon")
    torch.testing.assert_close(by_class, lrpkit.lrp(model, x, 0, "epsilon", opaque=["scaled"]))
    extend.MODULES.clear()

    def cumsum_relevance(step):  # a proportional share, the transpose of cumsum is a reversed cumsum
        x, y = step.inputs[0], step.output
        s = step.R / (y + 1e-9 * torch.where(y >= 0, 1.0, -1.0))
        return [s.flip(-1).cumsum(-1).flip(-1) * x, None]

    lrpkit.register_op(torch.ops.aten.cumsum.default, cumsum_relevance)
    torch.testing.assert_close(lrpkit.lrp(model, x, 0, "epsilon"), by_class, rtol=1e-4, atol=1e-6)  # stabilisers differ
    with pytest.raises(SpecError, match="torch.nn.Module subclass"):
        lrpkit.register_module(object)


class Geometry(nn.Module):
    """Convolutions in 1 and 3 dimensions, transposed, dilated and grouped; pooling in 1-3 d, adaptive too;
    nearest and bilinear upsampling; constant padding: all linear or ReLU-like, so LRP-0 = gradient x input."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1d = nn.Conv1d(2, 4, 3, stride=2, padding=1, dilation=2)
        self.conv3d = nn.Conv3d(1, 3, (2, 3, 3), padding=(0, 1, 1), groups=1)
        self.up = nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1, groups=1)
        self.grouped = nn.Conv2d(4, 4, 3, padding=2, dilation=2, groups=2)
        self.fc = nn.Linear(4 * 2 + 4 * 3 + 3, 3)

    def forward(self, x):  # x: (N, 2, 4, 4, 4)
        line = F.relu(self.conv1d(x.flatten(2)[:, :, :16]))  # (N, 4, 7)
        line = F.max_pool1d(line, 3, 2, 1)  # (N, 4, 4)
        line = F.avg_pool1d(line, 2)  # (N, 4, 2)
        volume = F.relu(self.conv3d(x[:, :1]))  # (N, 3, 3, 4, 4)
        volume = F.max_pool3d(volume, (1, 2, 2))  # (N, 3, 3, 2, 2)
        plane = F.relu(self.up(F.avg_pool3d(volume, (3, 1, 1)).squeeze(2)))  # (N, 4, 4, 4)
        plane = F.interpolate(plane, scale_factor=2, mode="nearest")  # (N, 4, 8, 8)
        plane = F.interpolate(F.pad(plane, (1, 1, 1, 1)), size=(6, 6), mode="bilinear", align_corners=False)
        plane = F.relu(self.grouped(plane))  # (N, 4, 6, 6)
        pooled = F.adaptive_max_pool2d(plane, (1, 3)).flatten(1)  # (N, 12)
        side = F.adaptive_avg_pool3d(volume, 1).flatten(1)  # (N, 3)
        return self.fc(torch.cat([line.flatten(1), pooled, side], 1))


def test_every_geometry_lrp0_is_gradient_times_input():
    torch.manual_seed(7)
    model = Geometry().double().eval()
    x = torch.randn(3, 2, 4, 4, 4, dtype=F64)
    target = torch.tensor([0, 2, 1])
    assert relative(lrpkit.lrp(model, x, target, GRADIENT_X_INPUT), gradient_x_input(model, x, target)) <= 1e-10
    R = lrpkit.lrp(zero_biases(model), x, target, LRP0)
    top = model(x).gather(1, target[:, None]).squeeze(1).detach()
    assert float(((R.flatten(1).sum(1) - top).abs() / top.abs()).max()) <= 1e-6


def test_a_linear_transpose_on_few_live_rows_equals_the_full_product():
    w = torch.randn(7, 5, dtype=F64)
    s = torch.zeros(1, 2, 20, 7, dtype=F64)
    s[0, 1, [3, 17]] = torch.randn(2, 7, dtype=F64)
    assert torch.allclose(weighted._live_rows_times(s, w), s @ w, rtol=1e-14, atol=0)
    s[0, 0, 5, 2] = float("nan")  # a NaN row is live: the NaN reaches the result
    out = weighted._live_rows_times(s, w)
    assert out[0, 0, 5].isnan().all() and torch.equal(out[0, 0, 4], torch.zeros(5, dtype=F64))
    dense = torch.randn(1, 40, 7, dtype=F64)
    assert torch.allclose(weighted._live_rows_times(dense, w), dense @ w, rtol=1e-14, atol=0)
