import json
import subprocess
import sys

import pytest

import lrpkit
from lrpkit.cli import main


def test_train_info_evaluate(tmp_path, capsys):
    spec = tmp_path / "arch.json"
    spec.write_text(
        json.dumps({"layers": [{"type": "Linear", "units": 32}, {"type": "ReLU"}, {"type": "Linear", "units": 10}]})
    )
    out = tmp_path / "model"
    assert main(["train", "--arch", str(spec), "--out", str(out), "--steps", "200", "--quiet"]) == 0
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
    ],
)
def test_errors_are_one_line_exit_2(argv, message, capsys):
    with pytest.raises(SystemExit) as raised:
        raise SystemExit(main(argv))
    assert raised.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_console_script_runs_as_module():
    done = subprocess.run([sys.executable, "-m", "lrpkit.cli", "info", "/nope"], capture_output=True, text=True)
    assert done.returncode == 2 and done.stderr.startswith("lrpkit: error:")
