"""`lrpkit explain` / `lrpkit filters` end to end on a tiny trained model, plus plot_classes and explain_to_files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import lrpkit
from lrpkit.cli import main
from lrpkit.model.data import Split, mnist
from lrpkit.pictures import classes
from lrpkit.pictures.explain import explain_to_files, parse_target

COUNT = 30  # synthetic test images, 3 per class


def _write_idx(path: Path, magic: int, array: np.ndarray) -> None:
    header = magic.to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    path.write_bytes(header + array.astype(np.uint8).tobytes())


def _digits(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Bright bars whose position depends on the class, on a dark background: learnable in a few steps."""
    labels = np.repeat(np.arange(10), COUNT // 10)
    images = rng.integers(0, 30, size=(COUNT, 28, 28))
    for k, label in enumerate(labels):
        images[k, 4 + 2 * label : 7 + 2 * label, 6:22] = 255
    return images, labels


@pytest.fixture(scope="module")
def setup(tmp_path_factory) -> tuple[Path, Path, lrpkit.Network]:
    root = tmp_path_factory.mktemp("explain")
    images, labels = _digits(np.random.default_rng(0))
    (root / "data").mkdir()
    _write_idx(root / "data" / "t10k-images-idx3-ubyte", 2051, images)
    _write_idx(root / "data" / "t10k-labels-idx1-ubyte", 2049, labels)
    split = mnist(root / "data").test
    net = lrpkit.Network([lrpkit.Linear(16), lrpkit.ReLU(), lrpkit.Linear(10)], seed=0)
    net.fit(Split(split.images, split.labels), steps=15, lr=0.01, progress=False)
    net.save(root / "model")
    return root / "model", root / "data", net


def _explain(setup, tmp_path: Path, capsys, *args: str) -> tuple[Path, str]:
    model, data, _ = setup
    out = tmp_path / "out"
    assert main(["explain", str(model), "--data", str(data), "--out", str(out), *args]) == 0
    return out, capsys.readouterr().out


def _inputs(setup, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    split = mnist(setup[1]).test
    sample = split.balanced(n)
    return sample.images, sample.labels


def _png(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        assert image.format == "PNG"
        return np.asarray(image)


def test_explain_all_writes_every_file_and_conserves(setup, tmp_path, capsys) -> None:
    out, printed = _explain(setup, tmp_path, capsys, "--target", "all", "--n", "5")
    expected = {"x.png", "classes.png", "all_classes.npy", *(f"class_{k}.png" for k in range(10))}
    assert {p.name for p in out.iterdir()} == expected
    for name in expected:
        assert str(out / name) in printed
    assert _png(out / "x.png").shape == (28 * 3, 5 * 28 * 3 + 4, 3)  # 5 inputs in one row, zoom 3
    x, _ = _inputs(setup, 5)
    net = setup[2]
    relevance = np.load(out / "all_classes.npy")
    np.testing.assert_allclose(relevance, net.lrp(x, "all", "deeptaylor").double().numpy(), rtol=1e-6, atol=1e-9)
    with torch.no_grad():
        start = net(x).double().clamp(min=0).numpy()  # deeptaylor starts from relu(logits)
    np.testing.assert_allclose(relevance.reshape(5, 10, -1).sum(-1), start, rtol=1e-4, atol=1e-5)
    reported = float(printed.split("= ")[1].split()[0])
    assert reported == pytest.approx(np.abs(relevance.reshape(5, 10, -1).sum(-1) - start).max(), abs=1e-6)


def test_explain_true_target_uses_the_labels(setup, tmp_path, capsys) -> None:
    out, printed = _explain(setup, tmp_path, capsys, "--method", "simple", "--cmap", "tutorial", "--n", "4")
    assert {p.name for p in out.iterdir()} == {"x.png", "correct_class.png", "correct_class.npy", "classes.png"}
    x, labels = _inputs(setup, 4)
    relevance = np.load(out / "correct_class.npy")
    with torch.no_grad():
        logits = setup[2](x).double().numpy()
    assert (logits.argmax(1) != labels.numpy()).any()  # so that explaining the prediction would fail below
    np.testing.assert_allclose(relevance.reshape(4, -1).sum(1), logits[np.arange(4), labels], rtol=1e-4, atol=1e-5)
    assert "conservation error" in printed


def test_explain_none_is_neutral_and_class_k_is_named(setup, tmp_path, capsys) -> None:
    out, _ = _explain(setup, tmp_path, capsys, "--target", "none", "--n", "3")
    assert not np.load(out / "nothing.npy").any()
    pixels = _png(out / "nothing.png").reshape(-1, 3)
    assert set(map(tuple, pixels)) <= {(255, 255, 255), (178, 178, 178)}  # white maps, gray separators
    out, _ = _explain(setup, tmp_path, capsys, "--target", "7", "--n", "3", "--method", '["ab", 2.0]')
    assert (out / "class_7.png").is_file() and np.load(out / "class_7.npy").shape == (3, 1, 28, 28)


def test_gray_keeps_the_sign_of_the_relevance(setup, tmp_path, capsys) -> None:
    """Gray is for inputs (min..max); on relevance 0 stays mid-gray, so negative and positive stay apart."""
    out, _ = _explain(setup, tmp_path, capsys, "--method", "simple", "--cmap", "gray", "--n", "1")
    relevance = np.load(out / "correct_class.npy")[0, 0]
    assert (relevance > 0).any() and (relevance < 0).any()
    levels = _png(out / "correct_class.png")[::3, ::3, 0].astype(float)  # one gray level per pixel (zoom 3)
    expected = np.round((relevance / np.abs(relevance).max() * 0.5 + 0.5) * 255)
    np.testing.assert_array_equal(levels, expected)
    assert (levels[relevance > 0] >= 128).all() and (levels[relevance < 0] <= 128).all()


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # Python >= 3.12
def test_a_killed_explain_leaves_no_empty_temporary_files(setup, tmp_path) -> None:
    """Every file is rendered in memory and only then written: a kill leaves no half-made or empty file behind."""
    import os
    import random
    import signal
    import time

    model, data, _ = setup
    argv = ["explain", str(model), "--data", str(data), "--out", str(tmp_path / "out"), "--n", "30", "--target", "all"]
    rng = random.Random(0)
    for _ in range(8):
        pid = os.fork()
        if pid == 0:
            os._exit(main(argv))
        time.sleep(rng.uniform(0.05, 0.6))
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        if (tmp_path / "out").exists():
            empty = [p.name for p in (tmp_path / "out").iterdir() if p.stat().st_size == 0]
            assert empty == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--target", "12"], "class 0..9"),
        (["--target", "best"], "true, pred, all, none"),
        (["--n", "0"], "argument --n: value must be a positive integer, got 0"),
        (["--n", "31"], "--n (a number of test images) must be an integer <= 30, got 31"),
        (["--method", "nope"], "unknown rule 'nope'"),
        (["--method", "ab:0.5"], "AlphaBeta: alpha must be a finite number >= 1.0, got 0.5"),
        (["--method", "ab:x"], "expected name or name:number"),
        (["--method", "[oops"], "not valid JSON"),
        (["--cmap", "jet"], "unknown colour map 'jet'"),
    ],
)
def test_bad_arguments_give_one_line_errors(setup, tmp_path, capsys, args: list[str], message: str) -> None:
    model, data, _ = setup
    code = main(["explain", str(model), "--data", str(data), "--out", str(tmp_path / "o"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("lrpkit: error:") and message in err and err.count("\n") == 1


def test_missing_model_and_missing_argument(setup, tmp_path, capsys) -> None:
    assert main(["explain", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")]) == 2
    assert "nowhere" in capsys.readouterr().err
    assert main(["explain", str(setup[0])]) == 2
    assert "--out" in capsys.readouterr().err


def test_filters_command(setup, tmp_path, capsys) -> None:
    assert main(["filters", str(setup[0]), "--out", str(tmp_path / "f")]) == 0
    assert capsys.readouterr().out.strip() == str(tmp_path / "f.png")
    assert _png(tmp_path / "f.png").shape == (4 * 56 + 3 * 2, 4 * 56 + 3 * 2, 3)  # 16 units, 28x28 zoomed 2x


def test_plot_classes_makes_one_engine_call(setup, tmp_path, monkeypatch) -> None:
    net = lrpkit.load(setup[0])
    x, labels = _inputs(setup, 4)
    calls = []
    engine = sys.modules["lrpkit.engine"]
    original = engine.lrp
    monkeypatch.setattr(engine, "lrp", lambda *args: calls.append(args[2]) or original(*args))
    path = lrpkit.plot_classes(net, x, "epsilon", tmp_path / "grid", labels=labels)
    assert calls == ["all"] and path == tmp_path / "grid.png"
    side = 28 * classes.ZOOM  # 13 columns: input, true class, 10 classes, nothing
    assert _png(path).shape == (
        classes.HEADING + 4 * (classes.TITLE + side + classes.ROW_GAP),
        13 * (side + 12) + 12,
        3,
    )
    top = classes.HEADING + classes.TITLE  # the first row's tiles: the input in gray, then the true class's heatmap
    first = _png(path)[top : top + side, classes.GAP + side + classes.GAP :][:, :side]
    assert first.shape == (side, side, 3)
    rgb = (lrpkit.heatmap(net.lrp(x[:1], "all", "epsilon")[0], normalize="batch", symmetric=True) * 255).round()
    np.testing.assert_array_equal(first[:: classes.ZOOM, :: classes.ZOOM], rgb[int(labels[0])].astype(np.uint8))


def test_explain_to_files_validates_before_working(setup, tmp_path) -> None:
    x, _ = _inputs(setup, 2)
    with pytest.raises(lrpkit.TargetError, match="needs the true labels"):
        explain_to_files(setup[2], x, "simple", "true", tmp_path)
    with pytest.raises(lrpkit.TargetError, match="2 class ids"):
        explain_to_files(setup[2], x, "simple", "pred", tmp_path, labels=[1, 2, 3])
    assert not any(tmp_path.iterdir())
    assert parse_target("3", 10) == 3 and parse_target("none", 10) is None and parse_target("pred", 10) == "pred"
