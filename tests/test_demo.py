"""`make demo` end to end, with few training steps: the README's first command must keep working."""

import runpy
import sys
from pathlib import Path

import lrpkit

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
PICTURES = {"x.png", "classes.png", "correct_class.png", "nothing.png", "filters.png", "all_classes.npy"}


def test_demo_runs_end_to_end(tmp_path, monkeypatch, capsys):
    (tmp_path / "mlp" / "model").mkdir(parents=True)
    lrpkit.mlp().save(tmp_path / "mlp" / "model")  # a model of an earlier run is replaced, beside its pictures
    (tmp_path / "mlp" / "x.png").write_bytes(b"an earlier picture")
    monkeypatch.setattr(sys, "argv", [str(DEMO), "--out", str(tmp_path), "--steps", "3"])
    runpy.run_path(str(DEMO), run_name="__main__")  # as `python examples/demo.py`, in this process (no startup)
    printed = capsys.readouterr().out
    for name in ("mlp", "cnn", "resnet"):
        folder = tmp_path / name
        assert PICTURES | {f"class_{k}.png" for k in range(10)} <= {p.name for p in folder.iterdir()}
        assert lrpkit.load(folder / "model").metadata["steps"] == 3
        assert f"  {folder / 'model' / 'model.json'}" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn", "mlp", "resnet"]
