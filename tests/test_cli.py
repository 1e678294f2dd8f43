import json
import struct
import subprocess
import sys

import numpy as np
import pytest

import lrpkit
from lrpkit.cli import common, main


def _write_idx(directory, split, images, labels):
    directory.mkdir(exist_ok=True)
    header = struct.pack(">IIII", 2051, *images.shape)
    (directory / f"{split}-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (directory / f"{split}-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small IDX directories: 28x28 train + test images, and 32x32 test images."""
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)
    labels = np.arange(40, dtype=np.uint8) % 10
    for split in ("train", "t10k"):
        _write_idx(root / "mnist", split, rng.integers(0, 256, (40, 28, 28)), labels)
    _write_idx(root / "wide", "t10k", rng.integers(0, 256, (40, 32, 32)), labels)
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory, data):
    path = tmp_path_factory.mktemp("model") / "mlp"
    assert main(["train", "--arch", _arch(path.parent, LINEAR), "--out", str(path), "--data", str(data / "mnist"),
                 "--steps", "5", "--quiet"]) == 0  # fmt: skip
    return path


LINEAR = [{"type": "Linear", "units": 8}, {"type": "ReLU"}, {"type": "Linear", "units": 10}]


def _arch(directory, spec, name="arch.json") -> str:
    file = directory / name
    file.write_text(spec if isinstance(spec, str) else json.dumps(spec))
    return str(file)


def _one_line(argv, capsys, code=2) -> str:
    assert main(argv) == code
    err = capsys.readouterr().err
    assert err.startswith("lrpkit: error:") and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_train_info_evaluate(tmp_path, capsys):
    out = tmp_path / "model"
    spec = {"layers": [{"type": "Linear", "units": 32}, *LINEAR[1:]]}
    assert main(["train", "--arch", _arch(tmp_path, spec), "--out", str(out), "--steps", "200"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    net = lrpkit.load(out)
    assert net.metadata["steps"] == 200 and net.metadata["test_accuracy"] > 0.8
    assert main(["info", str(out)]) == 0
    assert "Linear(units=32)" in capsys.readouterr().out
    assert main(["evaluate", str(out)]) == 0
    assert capsys.readouterr().out.startswith("accuracy 0.")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["info", "/nonexistent/model"], "no such model directory"),
        (["train", "--arch", "transformer", "--out", "x"], "neither an architecture"),
        (["train", "--out", "x", "--data", "/nonexistent"], "not a directory"),
        (["train", "--out"], "expected one argument"),
        (["frobnicate"], "invalid choice"),
        (["train", "--out", "x", "--lr", "-1"], "argument --lr: value must be a finite number > 0.0, got -1.0"),
        (["train", "--out", "x", "--lr", "nan"], "argument --lr: value must be a finite number > 0.0, got nan"),
        (["train", "--out", "x", "--lr", "fast"], "argument --lr: expected float, got 'fast'"),
        (["train", "--out", "x", "--augment", "-1"], "argument --augment: value must be an integer >= 0, got -1"),
        (["train", "--out", "x", "--seed", "10" * 20], "argument --seed: value must be an integer in 0..9223372"),
        (["train", "--out", "x", "--steps", "0"], "argument --steps: value must be a positive integer, got 0"),
    ],
)
def test_errors_are_one_line_exit_2(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert message in _one_line(argv, capsys)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("[" * 10_000, "arch.json: JSON nested deeper than 64 levels"),
        ({"layers": LINEAR, "classes": "ten"}, "classes must be a positive integer, got 'ten'"),
        ({"layers": [{"type": "Pad", "pixels": 2, "value": "black"}, *LINEAR]}, "Pad: value must be a finite number"),
        ({"layers": [{"type": "Linear", "units": 10**12}, *LINEAR]}, "more than this machine's memory"),
        ({"layers": LINEAR, "input_shape": [1, 10**9, 10**9]}, "more than this machine's memory"),
        ({"layers": LINEAR, "input_shape": [1, 32, 32]}, "images have shape (1, 28, 28), but the network takes"),
        ({"layers": [*LINEAR[:2], {"type": "Linear", "units": 5}], "classes": 5}, "labels run from 0 to 9, but the"),
        ({"layers": [{"type": "Flatten"}], "input_shape": [1, 28, 28], "classes": 784}, "no parameters to train"),
    ],
)
def test_bad_architectures_fail_in_one_line_before_training(spec, message, data, tmp_path, capsys):
    argv = ["train", "--arch", _arch(tmp_path, spec), "--out", str(tmp_path / "m"), "--data", str(data / "mnist")]
    assert message in _one_line([*argv, "--steps", "1", "--quiet"], capsys)
    assert not (tmp_path / "m").exists()


def test_models_and_images_that_do_not_fit_each_other(model, data, tmp_path, capsys):
    wide = str(data / "wide")
    for argv in (["evaluate", str(model), "--data", wide], ["explain", str(model), "--data", wide, "--out", "o"]):
        assert "images have shape (1, 32, 32), but the network takes inputs of shape (1, 28, 28)" in _one_line(
            argv, capsys
        )
    spec = json.loads((model / "model.json").read_text())
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.json").write_text(json.dumps({**spec, "metadata": ["not", "a", "mapping"]}))
    assert "model.json: metadata must be a mapping" in _one_line(["info", str(broken)], capsys)


def test_a_diverging_run_fails_and_keeps_the_old_model(model, data, tmp_path, capsys):
    out = tmp_path / "model"
    out.mkdir()
    for file in model.iterdir():
        (out / file.name).write_bytes(file.read_bytes())
    before = sorted((p.name, p.read_bytes()) for p in out.iterdir())
    argv = ["train", "--arch", _arch(tmp_path, LINEAR), "--out", str(out), "--data", str(data / "mnist")]
    assert "training diverged at step" in _one_line([*argv, "--lr", "1e30", "--steps", "50", "--quiet"], capsys)
    assert sorted((p.name, p.read_bytes()) for p in out.iterdir()) == before


def test_out_is_checked_before_any_work(model, data, tmp_path, capsys, monkeypatch):
    (tmp_path / "notes.txt").write_text("mine")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(common, "load_data", lambda args: pytest.fail("loaded the data before checking --out"))
    assert "holds files that are not part of an lrpkit model (notes.txt)" in _one_line(
        ["train", "--out", ".", "--data", str(data / "mnist")], capsys
    )
    for argv in (["explain", str(model)], ["evaluate-methods", str(model)]):
        assert "notes.txt/x: cannot be created, notes.txt is not a directory" in _one_line(
            [*argv, "--out", "notes.txt/x"], capsys
        )
    assert "notes.txt: exists and is not a directory" in _one_line(
        ["explain", str(model), "--out", "notes.txt"], capsys
    )
    assert "notes.txt/f.png: cannot be written" in _one_line(
        ["filters", str(model), "--out", "notes.txt/f.png"], capsys
    )
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_ctrl_c_prints_one_line_exits_130_and_writes_nothing(data, tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(lrpkit.Network, "fit", interrupted)
    argv = ["train", "--arch", _arch(tmp_path, LINEAR), "--out", str(tmp_path / "m"), "--data", str(data / "mnist")]
    assert main(argv) == 130
    assert capsys.readouterr().err == "lrpkit: interrupted\n"
    assert not (tmp_path / "m").exists()


def test_usage_version_help_and_debug(capsys):
    assert main([]) == 0
    usage = capsys.readouterr().out
    assert usage.startswith("usage: lrpkit") and all(c in usage for c in ("train", "explain", "evaluate-methods"))
    assert main(["--version"]) == 0 and capsys.readouterr().out == f"lrpkit {lrpkit.__version__}\n"
    assert main(["explain", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert (
        "epsilon_gamma_box" in text and "zplus" in text and "(default: deeptaylor)" in text and "(default: 10)" in text
    )
    assert main(["evaluate-methods", "--help"]) == 0
    assert "integrated_gradients" in capsys.readouterr().out
    for argv in (["--debug", "info", "/nope"], ["info", "/nope", "--debug"]):
        with pytest.raises(lrpkit.ModelFileError, match="no such model directory"):
            main(argv)


def test_the_parser_needs_no_torch_and_knows_every_baseline():
    code = "import sys; from lrpkit.cli import main; main(['--help']); sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0
    from lrpkit.attribution import BASELINES

    assert tuple(BASELINES) == common.BASELINES


def test_one_method_syntax():
    assert common.parse_method("deeptaylor") == "deeptaylor"
    assert common.parse_method(" ab:2 ") == ["ab", 2.0]
    assert common.parse_method('["ab", 2.0]') == ["ab", 2.0]
    assert common.parse_method('["zb", ["ab", 1.5], "epsilon"]') == ["zb", ["ab", 1.5], "epsilon"]
    assert common.split_methods('deeptaylor,["zb", "ab"], ab:2') == ["deeptaylor", '["zb", "ab"]', " ab:2"]
    with pytest.raises(lrpkit.SpecError, match="expected name or name:number"):
        common.parse_method("ab:x")
    with pytest.raises(lrpkit.SpecError, match="comma-separated"):
        common.split_methods("ab,")


def test_console_script_runs_as_module():
    done = subprocess.run([sys.executable, "-m", "lrpkit.cli", "info", "/nope"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("lrpkit: error:")


def test_help_names_every_architecture():
    from lrpkit.cli.model import ARCHITECTURE_NAMES

    assert ARCHITECTURE_NAMES.split(", ") == list(lrpkit.ARCHITECTURES)


def test_train_and_explain_the_resnet(data, tmp_path, capsys):
    out = tmp_path / "resnet"
    assert main(["train", "--arch", "resnet", "--out", str(out), "--data", str(data / "mnist"), "--steps", "3",
                 "--quiet"]) == 0  # fmt: skip
    net = lrpkit.load(out)
    assert any(type(spec).__name__ == "Residual" for spec in net.specs)
    pictures = tmp_path / "pictures"
    assert main(["explain", str(out), "--data", str(data / "mnist"), "--n", "4", "--out", str(pictures)]) == 0
    assert "conservation error" in capsys.readouterr().out
    assert (pictures / "x.png").is_file()
