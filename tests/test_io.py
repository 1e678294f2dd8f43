import json
import pickle

import pytest
import torch
from safetensors.torch import load_file, save_file

import lrpkit
from lrpkit.errors import ModelFileError


@pytest.fixture
def saved(tmp_path):
    net = lrpkit.cnn(seed=1)
    net.metadata["test_accuracy"] = 0.5
    return net, net.save(tmp_path / "model")


def test_round_trip_gives_identical_logits(saved):
    net, path = saved
    loaded = lrpkit.load(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(net(x), loaded(x))
    assert loaded.specs == net.specs and loaded.metadata["test_accuracy"] == 0.5
    spec = json.loads((path / "model.json").read_text())
    assert spec["format"] == "lrpkit-model" and spec["version"] == 1 and "lrpkit_version" in spec


def test_float64_round_trip(tmp_path):
    net = lrpkit.mlp().double()
    loaded = lrpkit.Network.load(net.save(tmp_path / "m"))
    x = torch.rand(2, 784, dtype=torch.float64)
    assert torch.equal(net(x), loaded(x))


def test_overwrite_rules(saved, tmp_path):
    net, path = saved
    with pytest.raises(ModelFileError, match="already saved"):
        net.save(path, overwrite=False)
    net.save(path)  # replacing a model is fine
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ModelFileError, match="not an lrpkit model directory"):
        net.save(other)
    assert (other / "cat.jpg").read_bytes() == b"meow"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "photos"]  # no temporary leftovers


def test_failed_save_leaves_old_model_intact(saved, monkeypatch):
    _, path = saved
    before = (path / "weights.safetensors").read_bytes()

    def explode(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("safetensors.torch.save_file", explode)
    with pytest.raises(OSError, match="disk full"):
        lrpkit.mlp().save(path)
    assert (path / "weights.safetensors").read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]


def _edit_spec(path, **changes):
    spec = json.loads((path / "model.json").read_text())
    spec.update(changes)
    (path / "model.json").write_text(json.dumps(spec))


def _edit_weights(path, edit):
    tensors = load_file(str(path / "weights.safetensors"))
    edit(tensors)
    save_file(tensors, str(path / "weights.safetensors"))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.json").unlink(), "model.json: missing"),
        (lambda p: (p / "weights.safetensors").unlink(), "weights.safetensors: missing"),
        (lambda p: (p / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda p: _edit_spec(p, format="keras"), "not an lrpkit model"),
        (lambda p: _edit_spec(p, version=99), "format version 99"),
        (lambda p: _edit_spec(p, layers=[{"type": "Banana"}]), "unknown layer type"),
        (lambda p: (p / "weights.safetensors").write_bytes(b"garbage" * 10), "not a readable safetensors"),
        (lambda p: _edit_weights(p, lambda t: t.pop("body.1.bias")), r"missing \['body.1.bias'\]"),
        (lambda p: _edit_weights(p, lambda t: t.update({"body.1.weight": torch.zeros(3)})), "body.1.weight has shape"),
        (lambda p: _edit_weights(p, lambda t: t["body.1.bias"].fill_(float("nan"))), "NaN"),
        (lambda p: _edit_weights(p, lambda t: t.update({"body.1.bias": torch.zeros(32, dtype=torch.int32)})), "dtype"),
        (lambda p: torch.save({}, p / "weights.safetensors"), "never unpickles"),
    ],
)
def test_damaged_models_raise_model_file_errors(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(ModelFileError, match=message):
        lrpkit.load(path)


@pytest.mark.parametrize(
    "writer", [lambda f: torch.save({"w": torch.zeros(1)}, f), lambda f: f.write_bytes(pickle.dumps([1]))]
)
def test_pickle_files_are_refused(tmp_path, writer):
    file = tmp_path / "model.pt"
    writer(file)
    with pytest.raises(ModelFileError, match="never unpickles"):
        lrpkit.load(file)


def test_missing_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such model directory"):
        lrpkit.load(tmp_path / "nothing")
