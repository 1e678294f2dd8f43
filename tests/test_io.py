import json
import os
import pickle
import stat

import pytest
import torch
from safetensors.torch import load_file, save_file

import lrpkit
from lrpkit.errors import ModelFileError
from lrpkit.model import io


@pytest.fixture
def saved(tmp_path):
    net = lrpkit.cnn(seed=1)
    net.metadata["test_accuracy"] = 0.5
    return net, net.save(tmp_path / "model")


def _spec(path):
    return json.loads((path / "model.json").read_text())


def _weights(path):
    return path / _spec(path)["weights"]


def test_round_trip_gives_identical_logits(saved):
    net, path = saved
    loaded = lrpkit.load(path)
    x = torch.rand(4, 1, 28, 28)
    assert torch.equal(net(x), loaded(x))
    assert loaded.specs == net.specs and loaded.metadata["test_accuracy"] == 0.5
    spec = _spec(path)
    assert spec["format"] == "lrpkit-model" and spec["version"] == 2 and "lrpkit_version" in spec
    assert sorted(p.name for p in path.iterdir()) == sorted(["model.json", spec["weights"]])
    assert io.WEIGHTS.fullmatch(spec["weights"])


def test_float64_round_trip(tmp_path):
    net = lrpkit.mlp().double()
    loaded = lrpkit.Network.load(net.save(tmp_path / "m"))
    x = torch.rand(2, 784, dtype=torch.float64)
    assert torch.equal(net(x), loaded(x)) and loaded.body[1].weight.dtype == torch.float64


def test_overwrite_rules(saved, tmp_path):
    net, path = saved
    with pytest.raises(ModelFileError, match="already saved"):
        net.save(path, overwrite=False)
    net.save(path)  # replacing a model is fine
    other = tmp_path / "photos"
    other.mkdir()
    (other / "cat.jpg").write_bytes(b"meow")
    with pytest.raises(ModelFileError, match=r"photos: holds files that are not part of an lrpkit model \(cat\.jpg\)"):
        net.save(other)
    assert (other / "cat.jpg").read_bytes() == b"meow"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "photos"]  # no temporary leftovers


def test_a_directory_holding_a_model_and_anything_else_survives_a_save(saved):
    """The old rule (a model.json makes a directory lrpkit's) deleted sources and pictures kept beside a model."""
    net, path = saved
    (path / "notes.txt").write_text("mine")
    (path / "src").mkdir()
    (path / "src" / "train.py").write_text("print('mine')")
    (path / "x.png").write_bytes(b"png")
    with pytest.raises(ModelFileError, match=r"\(notes\.txt, src/, x\.png\).*choose another directory"):
        net.save(path)
    assert (path / "notes.txt").read_text() == "mine" and (path / "src" / "train.py").is_file()
    assert lrpkit.load(path).metadata["test_accuracy"] == 0.5


def test_failed_save_leaves_old_model_intact(saved, monkeypatch):
    _, path = saved
    before = sorted((p.name, p.read_bytes()) for p in path.iterdir())

    def explode(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", explode)
    with pytest.raises(lrpkit.OutputError, match=r"weights-[0-9a-f]{16}\.safetensors: cannot write \(No space left"):
        lrpkit.mlp().save(path)
    assert sorted((p.name, p.read_bytes()) for p in path.iterdir()) == before
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]


def test_the_previous_weights_are_kept_until_the_next_save(saved):
    _, path = saved
    first = _weights(path).name
    lrpkit.mlp(seed=2).save(path)
    second = _weights(path).name
    assert {p.name for p in path.iterdir()} == {"model.json", first, second}
    lrpkit.mlp(seed=3).save(path)
    assert {p.name for p in path.iterdir()} == {"model.json", second, _weights(path).name}


def test_stale_temporaries_of_a_killed_save_are_removed_by_the_next(saved):
    net, path = saved
    stale = [path / f".lrpkit-{k:032x}.tmp" for k in range(3)]
    for file in stale:
        file.write_bytes(b"")
    (path / "weights-0123456789abcdef.safetensors").write_bytes(b"orphan weights of a killed save")
    net.save(path)
    assert sorted(p.name for p in path.iterdir()) == sorted(["model.json", _weights(path).name])


def test_non_finite_weights_are_never_saved(saved):
    _, path = saved
    before = _weights(path).read_bytes()
    broken = lrpkit.cnn()
    with torch.no_grad():
        broken.body[1].weight[0, 0, 0, 0] = float("nan")
    with pytest.raises(ModelFileError, match=r"refusing to save: body\.1\.weight holds NaN"):
        broken.save(path)
    assert _weights(path).read_bytes() == before


def test_metadata_that_is_not_json_is_refused_before_writing(tmp_path):
    net = lrpkit.mlp()
    net.metadata["weights"] = torch.zeros(2)
    with pytest.raises(ModelFileError, match="metadata must hold JSON values only"):
        net.save(tmp_path / "m")
    assert not (tmp_path / "m").exists()


def test_models_of_format_version_1_still_load_and_are_replaced_cleanly(saved, tmp_path):
    net, _ = saved
    old = tmp_path / "old"
    old.mkdir()
    spec = {"format": "lrpkit-model", "version": 1, "lrpkit_version": "0.1.0", **net.spec(), "metadata": {}}
    (old / "model.json").write_text(json.dumps(spec))
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(old / "weights.safetensors"))
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(lrpkit.load(old)(x), net(x))
    lrpkit.mlp().save(old)
    assert (old / "weights.safetensors").is_file()  # the previous generation, for readers of the old model.json
    lrpkit.mlp().save(old)
    assert sorted(p.name for p in old.iterdir()) == sorted(["model.json", _weights(old).name])


def test_files_follow_the_umask_and_a_directory_keeps_its_mode(tmp_path):
    old = os.umask(0o027)
    try:
        path = lrpkit.mlp().save(tmp_path / "new")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o750
    assert {stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {0o640}
    path.chmod(0o711)
    lrpkit.mlp().save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o711


def _edit_spec(path, **changes):
    spec = _spec(path)
    spec.update(changes)
    (path / "model.json").write_text(json.dumps(spec))


def _edit_weights(path, edit):
    tensors = load_file(str(_weights(path)))
    edit(tensors)
    save_file(tensors, str(_weights(path)))


HUGE = [{"type": "Linear", "units": 10**12}, {"type": "Linear", "units": 10}]


def _header(path, header: bytes, data: bytes = b""):
    _weights(path).write_bytes(len(header).to_bytes(8, "little") + header + data)


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda p: (p / "model.json").unlink(), "model.json: missing"),
        (lambda p: _weights(p).unlink(), r"weights-[0-9a-f]{16}\.safetensors: missing"),
        (lambda p: (p / "model.json").write_text("{not json"), "not valid JSON"),
        (lambda p: (p / "model.json").write_text("[" * 100_000), "nested deeper than 64 levels"),
        (lambda p: (p / "model.json").write_bytes(b"\xff\xfe"), "not UTF-8"),
        (lambda p: _edit_spec(p, format="keras"), "not an lrpkit model"),
        (lambda p: _edit_spec(p, version=99), "format version 99"),
        (lambda p: _edit_spec(p, layers=[{"type": "Banana"}]), "unknown layer type"),
        (lambda p: _edit_spec(p, classes="ten"), "model.json: classes must be a positive integer, got 'ten'"),
        (lambda p: _edit_spec(p, metadata=[1, 2]), "model.json: metadata must be a mapping"),
        (lambda p: _edit_spec(p, input_shape=[1, 28.5, 28]), r"input_shape .* must be a positive integer, got 28\.5"),
        (lambda p: _edit_spec(p, weights="../../etc/passwd"), "'weights' must name a weights-<16 hex digits>"),
        (lambda p: _edit_spec(p, layers=[{"type": "Pad", "pixels": 1, "value": "x"}]), "Pad: value must be a finite"),
        (lambda p: _edit_spec(p, layers=HUGE), "more than this machine's memory"),
        (lambda p: _weights(p).write_bytes(b"garbage" * 10), "not a readable safetensors"),
        (lambda p: _header(p, b"[1, 2]"), "header is not a JSON object"),
        (lambda p: _header(p, b"[" * 1000 + b"]" * 1000), "nested deeper"),
        (lambda p: _edit_weights(p, lambda t: t.pop("body.1.bias")), r"missing \['body.1.bias'\]"),
        (lambda p: _edit_weights(p, lambda t: t.update({"body.1.weight": torch.zeros(3)})), "body.1.weight has shape"),
        (lambda p: _edit_weights(p, lambda t: t["body.1.bias"].fill_(float("nan"))), "NaN"),
        (lambda p: _edit_weights(p, lambda t: t.update({"body.1.bias": torch.zeros(32, dtype=torch.int32)})), "dtype"),
        (lambda p: torch.save({}, _weights(p)), "never unpickles"),
    ],
)
def test_damaged_models_raise_model_file_errors(saved, damage, message):
    _, path = saved
    damage(path)
    with pytest.raises(ModelFileError, match=message):
        lrpkit.load(path)


def test_a_header_that_promises_more_than_the_file_holds(saved):
    net, path = saved
    header = {
        name: {"dtype": "F32", "shape": list(t.shape), "data_offsets": [0, 0]} for name, t in net.state_dict().items()
    }
    header["body.1.weight"]["data_offsets"] = [0, 32 * 25 * 4]
    _header(path, json.dumps(header).encode(), b"\0" * 16)
    with pytest.raises(ModelFileError, match=r"body\.1\.weight has data_offsets \[0, 3200\] outside the file's 16"):
        lrpkit.load(path)
    _weights(path).write_bytes((2**60).to_bytes(8, "little") + b"{}")
    with pytest.raises(ModelFileError, match="header of 1152921504606846976 bytes in a 10-byte file"):
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


def test_a_file_where_the_directory_should_be(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(lrpkit.OutputError, match="file: exists and is not a directory"):
        lrpkit.mlp().save(tmp_path / "file")
    with pytest.raises(lrpkit.OutputError, match=r"model: cannot be created, .*file is not a directory"):
        lrpkit.mlp().save(tmp_path / "file" / "model")
