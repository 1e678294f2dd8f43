"""`make demo` end to end, with few training steps: the README's first command must keep working."""

import subprocess
import sys
from pathlib import Path

import lrpkit

DEMO = Path(__file__).resolve().parents[1] / "examples" / "demo.py"
PICTURES = {"x.png", "classes.png", "correct_class.png", "nothing.png", "filters.png", "all_classes.npy"}


def test_demo_runs_end_to_end(tmp_path):
    (tmp_path / "mlp" / "model").mkdir(parents=True)
    lrpkit.mlp().save(tmp_path / "mlp" / "model")  # a model of an earlier run is replaced, beside its pictures
    (tmp_path / "mlp" / "x.png").write_bytes(b"an earlier picture")
    done = subprocess.run(
        [sys.executable, str(DEMO), "--out", str(tmp_path), "--steps", "3"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    for name in ("mlp", "cnn"):
        folder = tmp_path / name
        assert PICTURES | {f"class_{k}.png" for k in range(10)} <= {p.name for p in folder.iterdir()}
        assert lrpkit.load(folder / "model").metadata["steps"] == 3
        assert f"  {folder / 'model' / 'model.json'}" in done.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cnn", "mlp"]
