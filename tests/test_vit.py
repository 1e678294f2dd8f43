"""The MNIST ViT (``lrpkit.vit()``): its spec as JSON, save/load, a short training, explaining it from the CLI."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
import torch

import lrpkit
from lrpkit.cli import main
from lrpkit.model.train import RECIPES
from lrpkit.reference import MismatchError, Report, check_model, ops, unknown_layers


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A ViT trained for a few steps by ``lrpkit train --arch vit`` (the recipe with fewer steps)."""
    out = tmp_path_factory.mktemp("vit") / "model"
    assert main(["train", "--arch", "vit", "--out", str(out), "--steps", "40", "--quiet"]) == 0
    return out


def test_spec_survives_json_and_builds_the_same_network() -> None:
    net = lrpkit.vit()
    spec = json.loads(json.dumps(net.spec()))
    assert [layer["type"] for layer in spec["layers"]][3:7] == ["Tokens", "Encoder", "Encoder", "ClassToken"]
    again = lrpkit.Network.from_spec(spec)
    assert again.spec() == net.spec() and again.summary() == net.summary()
    x = torch.rand(3, 1, 28, 28)
    torch.testing.assert_close(again.eval()(x), net.eval()(x), rtol=0, atol=0)  # same seed, same weights


def test_shapes_and_bad_specs() -> None:
    net = lrpkit.vit()
    assert net.shapes[3:] == [(32, 14, 14), (50, 64), (50, 64), (50, 64), (64,), (10,)]
    with pytest.raises(lrpkit.SpecError, match="multiples of patch=3"):
        lrpkit.Network([lrpkit.Tokens(16, 3), lrpkit.ClassToken(), lrpkit.Linear(10)])
    with pytest.raises(lrpkit.SpecError, match="multiple of heads=3"):
        lrpkit.Network([lrpkit.Tokens(16, 4), lrpkit.Encoder(3), lrpkit.ClassToken(), lrpkit.Linear(10)])


def test_save_load_gives_identical_logits(tmp_path) -> None:
    net = lrpkit.vit(seed=3).eval()
    net.metadata["note"] = "vit"
    net.save(tmp_path / "vit")
    names = sorted(p.name for p in (tmp_path / "vit").iterdir())
    assert names[0] == "model.json" and names[1].startswith("weights-") and len(names) == 2
    loaded = lrpkit.load(tmp_path / "vit")
    x = torch.rand(4, 1, 28, 28)
    torch.testing.assert_close(loaded(x), net(x), rtol=0, atol=0)
    assert loaded.metadata == {"note": "vit"} and not loaded.training


def test_cli_training_uses_the_recipe_and_learns(trained) -> None:
    net, recipe = lrpkit.load(trained), RECIPES["vit"]
    assert net.metadata["steps"] == 40  # --steps overrides the recipe, the rest is the recipe's
    assert {k: net.metadata[k] for k in ("loss", "lr", "augment", "schedule")} == {
        k: recipe[k] for k in ("loss", "lr", "augment", "schedule")
    }
    test = lrpkit.mnist().test
    assert net.evaluate(test)["loss"] < lrpkit.vit().evaluate(test, loss="softmax")["loss"]  # 40 steps: a start


@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp", "attnlrp_vit"])
def test_cli_explains_the_vit(trained, tmp_path, capsys, method) -> None:
    out = tmp_path / method
    assert main(["explain", str(trained), "--method", method, "--target", "pred", "--n", "3", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "predicted_class.png" in printed and "conservation error" in printed
    relevance = np.load(next(out.glob("*.npy")))
    assert relevance.shape[0] == 3 and relevance.size == 3 * 28 * 28 and np.isfinite(relevance).all()
    assert np.abs(relevance).sum() > 0


def test_cli_evaluate_methods_on_the_vit(trained, tmp_path, capsys) -> None:
    out = tmp_path / "faithfulness"
    argv = ["evaluate-methods", str(trained), "--methods", "attnlrp,cp_lrp_vit,gradxinput,random", "--n", "4"]
    assert main([*argv, "--steps", "4", "--out", str(out)]) == 0
    assert "| `attnlrp` |" in capsys.readouterr().out  # the table it wrote, printed
    table = (out / "aopc.md").read_text()
    assert all(f"`{name}`" in table for name in ("attnlrp", "cp_lrp_vit", "gradxinput", "random"))


@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp", "attnlrp_vit"])
def test_engine_equals_the_numpy_twin_on_the_vit(method) -> None:
    net = lrpkit.vit(seed=1).double().eval()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    check_model(net, x, method, atol=1e-9, rtol=1e-7)  # raises MismatchError naming the first node off


@pytest.fixture(scope="module")
def vit64():
    net = lrpkit.vit(seed=1).double().eval()
    return net, torch.rand(1, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(0))


def run(check: str, net: lrpkit.Network, x: torch.Tensor, method: Any) -> Report:
    if check == "check_model":
        return check_model(net, x, method, atol=1e-9, rtol=1e-7)
    return net.test(x, method, atol=1e-9)


@pytest.mark.parametrize("check", ["check_model", "Network.test"])
def test_the_twin_takes_the_vit_network_itself(vit64, check) -> None:
    report = run(check, *vit64, "cp_lrp")
    assert report.ok and report.checks[-1].label.startswith("R at node 'linear_8'")  # per node, the logits last


@pytest.mark.parametrize("check", ["check_model", "Network.test"])
def test_a_wrong_rule_in_the_twin_is_caught_on_the_vit(vit64, check, monkeypatch) -> None:
    forward, relevance = ops.OPS["linear"]
    skewed = lambda c: [r * 1.001 if r is not None else None for r in relevance(c)]  # noqa: E731
    monkeypatch.setitem(ops.OPS, "linear", (forward, skewed))  # every Linear's relevance 0.1% off
    with pytest.raises(MismatchError, match=r"'cp_lrp' differ walking back from the logits, first at R at node"):
        run(check, *vit64, "cp_lrp")


def test_network_test_checks_the_vit_forward_node_by_node(vit64, monkeypatch) -> None:
    net, x = vit64
    report = net.test(x, atol=1e-12)  # no method: every node's output, torch vs the graph twin
    assert report.ok and report.what == "node outputs" and len(report.checks) > len(net.body)
    assert report.checks[0].label == "output of node 'x' (input)"
    forward, relevance = ops.OPS["softmax"]
    monkeypatch.setitem(ops.OPS, "softmax", (lambda node, inputs: forward(node, inputs) * 1.001, relevance))
    with pytest.raises(MismatchError, match=r"node outputs differ first at output of node '\w+_weights' \(softmax\)"):
        net.test(x, atol=1e-12)


def test_unknown_layers_decides_which_twin() -> None:
    assert unknown_layers(lrpkit.vit().spec()) == ["Tokens", "Encoder", "ClassToken"]
    assert unknown_layers(lrpkit.resnet().spec()) == [] and unknown_layers(lrpkit.mlp().spec()) == []
    nested = {"layers": [{"type": "Residual", "body": [{"type": "Encoder", "heads": 4}], "shortcut": None}]}
    assert unknown_layers(nested) == ["Encoder"]
