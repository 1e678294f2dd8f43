"""The README: every link resolves inside the repository, and its first Python example runs as written."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_links_resolve_inside_the_repository():
    targets = [t for t in re.findall(r"\]\(([^)\s]+)\)", README) if not t.startswith(("http://", "https://", "#"))]
    assert "docs/lrp-rules.md" in targets
    assert [t for t in targets if not (ROOT / t.split("#")[0]).exists()] == []
    assert "lrpkit.methods" not in README  # a module that does not exist


def test_the_ten_line_example_runs(tmp_path, monkeypatch):
    block = README.split("## Python in ten lines")[1].split("```python")[1].split("```")[0]
    assert len(block.strip().splitlines()) <= 12
    code = block.replace("steps=3000", "steps=30")  # the same code, a shorter training
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md", "exec"), namespace)
    assert namespace["heatmaps"].shape == (8, 1, 28, 28) and (tmp_path / "out" / "my-mlp" / "model.json").is_file()
    assert len(namespace["y"].unique()) > 1
