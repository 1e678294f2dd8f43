"""The heatmapping.org tutorial text format: files written here by hand, checked against a NumPy forward pass
that follows the tutorial's conventions (y = x W + b, [kh, kw, c_in, c_out] kernels, pad -1, 0.5 x sum pooling)."""

import shutil

import lrpkit.io
import numpy as np
import pytest
import torch
from numpy.lib.stride_tricks import sliding_window_view

import lrpkit
from lrpkit import layers as L
from lrpkit.cli import main
from lrpkit.errors import ModelFileError, SpecError
from lrpkit.model.tutorial import export_tutorial, load_tutorial

MLP_SHAPES = [(784, 300), (300, 100), (100, 10)]
CNN_SHAPES = [(5, 5, 1, 10), (5, 5, 10, 25), (4, 4, 25, 100), (1, 1, 100, 10)]


def cnn_stem(k, shape):
    return f"c{k}-{'x'.join(map(str, shape))}"


@pytest.fixture(scope="module")
def mlp_files(tmp_path_factory):
    """A tutorial MLP directory with random weights, and the weights as ``[(W (in x out), b), ...]``."""
    rng, directory = np.random.default_rng(0), tmp_path_factory.mktemp("mlp")
    params = []
    for k, (n_in, n_out) in enumerate(MLP_SHAPES, start=1):
        W, b = rng.normal(0, n_in**-0.5, (n_in, n_out)), rng.normal(0, 0.1, n_out)
        np.savetxt(directory / f"l{k}-W.txt", W)
        np.savetxt(directory / f"l{k}-B.txt", b[None])  # biases on one line
        params.append((W, b))
    return directory, params


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    """A tutorial CNN directory (values one per line, C order of [kh, kw, c_in, c_out]) and its kernels."""
    rng, directory = np.random.default_rng(1), tmp_path_factory.mktemp("cnn")
    params = []
    for k, shape in enumerate(CNN_SHAPES, start=1):
        W, b = rng.normal(0, np.prod(shape[:3]) ** -0.5, shape), rng.normal(0, 0.1, shape[3])
        (directory / f"{cnn_stem(k, shape)}-W.txt").write_text("\n".join(map(repr, W.ravel().tolist())) + "\n")
        (directory / f"{cnn_stem(k, shape)}-B.txt").write_text(" ".join(map(repr, b.tolist())))
        params.append((W, b))
    return directory, params


def tutorial_mlp_forward(x, params):
    a = x.reshape(len(x), -1) * 2 - 1
    for k, (W, b) in enumerate(params):
        a = a @ W + b
        a = np.maximum(a, 0) if k < len(params) - 1 else a
    return a


def tutorial_cnn_forward(x, params):
    a = np.pad(x.reshape(len(x), 28, 28, 1) * 2 - 1, ((0, 0), (2, 2), (2, 2), (0, 0)), constant_values=-1.0)
    for k, (W, b) in enumerate(params):
        windows = sliding_window_view(a, W.shape[:2], axis=(1, 2))  # (N, H', W', C, kh, kw)
        a = np.einsum("nijcab,abco->nijo", windows, W) + b
        if k < 3:
            a = np.maximum(a, 0)
            n, h, w, c = a.shape
            a = 0.5 * a.reshape(n, h // 2, 2, w // 2, 2, c).sum(axis=(2, 4))
    return a.reshape(len(x), 10)


@pytest.fixture(scope="module")
def images():
    return np.random.default_rng(2).uniform(0, 1, size=(3, 1, 28, 28))


def logits(net, x):
    with torch.no_grad():
        return net(torch.as_tensor(x, dtype=torch.float32)).double().numpy()


def test_load_mlp(mlp_files, images):
    directory, params = mlp_files
    net = lrpkit.io.load_tutorial(directory)
    assert [type(s).__name__ for s in net.specs] == ["Format", "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert net.bounds == (-1.0, 1.0) and net.metadata["source"] == "heatmapping.org tutorial MLP"
    np.testing.assert_allclose(logits(net, images), tutorial_mlp_forward(images, params), rtol=1e-4, atol=1e-4)


def test_load_cnn(cnn_files, images):
    directory, params = cnn_files
    net = load_tutorial(str(directory))
    assert net.spec() == lrpkit.tutorial_cnn().spec()
    np.testing.assert_allclose(logits(net, images), tutorial_cnn_forward(images, params), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("architecture", [lrpkit.tutorial_mlp, lrpkit.tutorial_cnn])
def test_export_then_load_gives_the_same_logits(tmp_path, images, architecture):
    net = architecture(seed=7)
    assert net.export_tutorial(tmp_path / "model") == tmp_path / "model"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no staging directory left behind
    again = load_tutorial(tmp_path / "model")
    assert torch.equal(torch.as_tensor(logits(again, images)), torch.as_tensor(logits(net, images)))


def test_exported_layout(tmp_path):
    export_tutorial(lrpkit.tutorial_mlp(seed=1), tmp_path / "mlp")
    names = sorted(p.name for p in (tmp_path / "mlp").iterdir())
    assert names == [f"l{k}-{wb}.txt" for k in (1, 2, 3) for wb in "BW"]
    lines = (tmp_path / "mlp" / "l2-W.txt").read_text().splitlines()
    assert len(lines) == 300 and {len(line.split()) for line in lines} == {100}
    net = lrpkit.tutorial_cnn(seed=1)
    export_tutorial(net, tmp_path / "cnn")
    names = sorted(p.name for p in (tmp_path / "cnn").iterdir())
    assert names == sorted(f"{cnn_stem(k, s)}-{wb}.txt" for k, s in enumerate(CNN_SHAPES, start=1) for wb in "BW")
    values = np.array((tmp_path / "cnn" / "c2-5x5x10x25-W.txt").read_text().split(), dtype=np.float32)
    kernel = net.body[5].weight.detach().numpy()  # (out, in, kh, kw)
    np.testing.assert_array_equal(values.reshape(5, 5, 10, 25)[1, 3, 4, 7], kernel[7, 4, 1, 3])


# -- errors ---------------------------------------------------------------------------------------------


def broken_copy(source, tmp_path, name, text=None):
    directory = tmp_path / "broken"
    shutil.copytree(source, directory)
    if text is None:
        (directory / name).unlink()
    else:
        (directory / name).write_text(text)
    return directory


def test_missing_wrong_count_and_non_numeric_files(mlp_files, cnn_files, tmp_path):
    mlp, cnn = mlp_files[0], cnn_files[0]
    cases = [
        (mlp, "l2-B.txt", None, r"l2-B.txt: missing"),
        (mlp, "l3-B.txt", " ".join(["0.5"] * 9), r"l3-B.txt: expected 10 values, found 9"),
        (mlp, "l3-B.txt", "1 2 three 4 5 6 7 8 9 10", r"l3-B.txt: value 3 \('three'\) is not a number"),
        (mlp, "l3-B.txt", "1 2 3 4 nan 6 7 8 9 10", r"l3-B.txt: value 5 is NaN or Inf"),
        (mlp, "l3-W.txt", "\n".join([" ".join(["1"] * 100)] * 10), r"l3-W.txt: expected a 100 x 10 matrix"),
        (cnn, "c4-1x1x100x10-W.txt", "0\n" * 999, r"c4-1x1x100x10-W.txt: expected 1000 values, found 999"),
        (cnn, "c3-4x4x25x100-B.txt", None, r"c3-4x4x25x100-B.txt: missing"),
        (cnn, "c1-5x5x1x10-W.txt", None, r"c1-5x5x1x10-W.txt: missing"),
        (mlp, "l1-W.txt", None, r"l1-W.txt: missing"),
    ]
    for source, name, text, match in cases:
        with pytest.raises(ModelFileError, match=match):
            load_tutorial(broken_copy(source, tmp_path, name, text))
        shutil.rmtree(tmp_path / "broken")
    directory = broken_copy(cnn, tmp_path, "c1-5x5x1x10-W.txt")
    (directory / "c1-3x3x1x10-W.txt").write_text("0\n" * 90)
    with pytest.raises(ModelFileError, match=r"found c1-3x3x1x10-W.txt, but the tutorial CNN needs c1-5x5x1x10-W"):
        load_tutorial(directory)


def test_not_a_tutorial_directory(tmp_path):
    with pytest.raises(ModelFileError, match="no such directory"):
        load_tutorial(tmp_path / "nothing")
    with pytest.raises(ModelFileError, match="neither the tutorial MLP"):
        load_tutorial(tmp_path)


@pytest.mark.parametrize(
    ("layers", "input_shape", "match"),
    [
        ([L.Format(), L.Linear(300), L.ReLU(), L.Dropout(), L.Linear(100), L.ReLU(), L.Linear(10)], (1, 28, 28),
         r"layer 3 \(Dropout\(p=0.5\)\): the tutorial format holds only Format, Linear"),
        ([L.Format(), L.Conv(10, 5), L.ReLU(), L.MaxPool(), L.Linear(10)], (1, 28, 28), r"layer 3 \(MaxPool"),
        ([L.Format(0.0, 1.0), L.Linear(300), L.ReLU(), L.Linear(100), L.ReLU(), L.Linear(10)], (1, 28, 28),
         r"inputs in \[-1, 1\]; this network has Format\(low=0.0, high=1.0\)"),
        ([L.Format(), L.Linear(200), L.ReLU(), L.Linear(100), L.ReLU(), L.Linear(10)], (1, 28, 28),
         r"layer 1 is Linear\(units=200\); the tutorial MLP has Linear\(units=300\) there"),
        ([L.Format(), L.Linear(300), L.ReLU(), L.Linear(10)], (1, 28, 28), r"layer 3 is Linear\(units=10\)"),
        ([L.Format(), L.Linear(10)], (784,), r"the tutorial MLP takes input \(1, 28, 28\)"),
        ([L.Format(), L.Conv(32, 5), L.ReLU(), L.SumPool(), L.Linear(10)], (1, 28, 28),
         r"layer 1 is Conv\(out_channels=32.*; the tutorial CNN has Pad"),
    ],
)  # fmt: skip
def test_export_refuses_other_networks(tmp_path, layers, input_shape, match):
    with pytest.raises(SpecError, match=match):
        lrpkit.Network(layers, input_shape, 10).export_tutorial(tmp_path / "out")
    assert not any(tmp_path.iterdir())


def test_export_overwrite_rules(tmp_path, images):
    target = tmp_path / "model"
    mlp, cnn = lrpkit.tutorial_mlp(seed=1), lrpkit.tutorial_cnn(seed=2)
    export_tutorial(mlp, target)
    with pytest.raises(ModelFileError, match="already there"):
        export_tutorial(cnn, target)
    export_tutorial(cnn, target, overwrite=True)  # replaces the MLP files entirely
    assert not (target / "l1-W.txt").exists()
    assert np.array_equal(logits(load_tutorial(target), images), logits(cnn, images))
    other = tmp_path / "notes"
    other.mkdir()
    (other / "readme.txt").write_text("mine")
    with pytest.raises(ModelFileError, match="not a tutorial model directory; refusing"):
        export_tutorial(mlp, other, overwrite=True)
    assert (other / "readme.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model", "notes"]


def test_export_failing_midway_leaves_nothing(tmp_path, monkeypatch):
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 3:
            raise OSError("disk full")
        return real(*args, **kwargs)

    real = np.savetxt
    monkeypatch.setattr(np, "savetxt", failing)
    with pytest.raises(OSError, match="disk full"):
        export_tutorial(lrpkit.tutorial_mlp(), tmp_path / "model")
    assert not any(tmp_path.iterdir())


# -- the command line -----------------------------------------------------------------------------------


def test_cli_import_tutorial(cnn_files, tmp_path, images, capsys):
    directory, _ = cnn_files
    assert main(["import-tutorial", str(directory), "--out", str(tmp_path / "model")]) == 0
    assert "imported the heatmapping.org tutorial CNN" in capsys.readouterr().out
    loaded = lrpkit.load(tmp_path / "model")
    assert np.array_equal(logits(loaded, images), logits(load_tutorial(directory), images))
    assert main(["import-tutorial", str(tmp_path / "missing"), "--out", str(tmp_path / "x")]) == 2
    assert "no such directory" in capsys.readouterr().err


def test_export_swaps_directories_atomically_keeps_the_mode_and_cleans_up(tmp_path, images, monkeypatch):
    from lrpkit import files

    target = tmp_path / "model"
    export_tutorial(lrpkit.tutorial_mlp(seed=1), target)
    target.chmod(0o751)
    stale = tmp_path / ".model.lrpkit-0123456789abcdef0123456789abcdef.tmp"  # staging of a killed export
    stale.mkdir()
    swaps, real = [], files._exchange
    monkeypatch.setattr(files, "_exchange", lambda a, b: swaps.append(b) or real(a, b))
    cnn = lrpkit.tutorial_cnn(seed=2)
    export_tutorial(cnn, target, overwrite=True)
    assert oct(target.stat().st_mode & 0o777) == oct(0o751)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert np.array_equal(logits(load_tutorial(target), images), logits(cnn, images))
    assert swaps == [target]


def test_an_export_killed_between_two_renames_is_undone_by_the_next(tmp_path, images):
    """Where the OS cannot swap two directories atomically, the old one is moved aside for an instant."""
    target = tmp_path / "model"
    mlp = lrpkit.tutorial_mlp(seed=1)
    export_tutorial(mlp, target)
    target.rename(tmp_path / ".model.old-0123")  # killed right after moving the old model aside
    with pytest.raises(ModelFileError, match="already there"):
        export_tutorial(lrpkit.tutorial_mlp(seed=3), target)  # the old model is back, and not overwritten
    assert np.array_equal(logits(load_tutorial(target), images), logits(mlp, images))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
