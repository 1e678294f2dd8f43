"""The Residual and BatchNorm layer specs and the ready-made MNIST ResNet: specs, files, the NumPy twin."""

import json

import pytest
import torch

import lrpkit
from blocks import randomise, zero_biases
from lrpkit import layers as L
from lrpkit.composites import PRESETS
from lrpkit.errors import SpecError

F64 = torch.float64


@pytest.fixture(scope="module")
def resnet():
    """The ready-made ResNet (float64) with BatchNorm statistics away from the identity, and inputs."""
    net = randomise(lrpkit.resnet(seed=1), seed=1)
    return net, torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1), dtype=F64)


def test_the_spec_round_trips_through_json_and_files(resnet, tmp_path):
    net, x = resnet
    spec = json.loads(json.dumps(net.spec()))
    assert lrpkit.Network.from_spec(spec).spec() == spec
    assert spec["layers"][7]["shortcut"][0] == {
        "type": "Conv",
        "out_channels": 32,
        "kernel_size": 1,
        "stride": 2,
        "padding": 0,
    }
    loaded = lrpkit.load(net.save(tmp_path / "resnet"))
    assert torch.equal(loaded(x), net(x))


def test_residual_shapes_are_checked():
    body = (L.Conv(4, 3, 1, 1),)
    with pytest.raises(SpecError, match=r"the body outputs \(4, 6, 6\) but the shortcut \(1, 6, 6\)"):
        lrpkit.Network([L.Residual(body), L.Flatten(), L.Linear(10)], input_shape=(1, 6, 6))
    with pytest.raises(SpecError, match="list of layer specs"):
        L.Residual(L.Conv(4, 3))
    net = lrpkit.Network([L.Residual(body, (L.Conv(4, 1),)), L.Flatten(), L.Linear(10)], input_shape=(1, 6, 6))
    assert net.shapes[2] == (4, 6, 6)  # after the Format layer put in front
    with pytest.raises(SpecError, match="only allowed as a network's first layer"):
        lrpkit.Network([L.Residual((L.Format(),)), L.Linear(10)], input_shape=(4,))


@pytest.mark.filterwarnings("ignore::lrpkit.RelevanceWarning")  # gamma meets small denominators here
@pytest.mark.parametrize("method", ["zplus", ["ab", 2.0], "gamma", "ww", "flat", *sorted(PRESETS)], ids=str)
def test_engine_matches_the_twin_built_from_the_spec(resnet, method):
    net, x = resnet
    net.test(x, method, "pred", atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize("method", ["simple", "epsilon"])
def test_engine_matches_the_twin_for_ill_conditioned_rules(resnet, method):
    net, x = resnet  # LRP-0 and epsilon divide by outputs near 0: summation order shows at 1e-10
    net.test(x, method, "pred", atol=1e-10, rtol=1e-8)


def test_bias_free_relevance_is_conserved_through_every_layer(resnet):
    net, x = resnet
    bias_free = zero_biases(randomise(lrpkit.resnet(seed=2), seed=2))
    R = bias_free.layerwise_lrp(x, "pred", {"linear": "simple", "conv": "simple", "sum": lrpkit.Proportional(1e-12),
                                            "avg_pool": lrpkit.Proportional(1e-12)})  # fmt: skip
    totals = torch.stack([r.flatten(1).sum(1) for r in R])
    torch.testing.assert_close(totals, totals[-1].expand_as(totals), rtol=1e-6, atol=0)
    assert len(R) == len(net.specs) + 1
