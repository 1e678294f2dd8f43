"""Shared by the bench scripts: the environment a run was measured in, and sections of ``bench/RESULTS.md``.

Each script owns one section of RESULTS.md, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; a run
replaces its own section and leaves the others alone. Files are written to a temporary path and renamed.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import torch

from _peers import version

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = (
    "# lrpkit benchmark results\n\n"
    "Written by `bench/speed.py` and `bench/conformance.py` (see `bench/README.md`); each run replaces its section.\n"
)


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU: {cpu_model()}, {os.cpu_count()} logical cores, torch threads {torch.get_num_threads()}"


def load_average() -> str:
    try:
        return ", ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def git_commit() -> str:
    try:
        root = Path(__file__).resolve().parents[1]
        out = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def environment(device: torch.device) -> list[str]:
    """Markdown bullet lines: when, where, and which versions."""
    versions = ", ".join(f"{name} {version(name)}" for name in ("lrpkit", "torch", "zennit", "captum", "numpy"))
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; lrpkit commit {git_commit()}",
        f"- device: {device_name(device)}",
        f"- python {platform.python_version()}; {versions}",
        f"- command: `python {' '.join(sys.argv)}`",
    ]


def update_section(name: str, text: str, path: Path = RESULTS) -> Path:
    """Replaces (or appends) section ``name`` of ``path`` with ``text``; atomic write."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    old = path.read_text() if path.exists() else TITLE
    block = f"{begin}\n{text.rstrip()}\n{end}"
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        new = head + block + rest.split(end, 1)[1]
    else:
        new = old.rstrip() + "\n\n" + block + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    return path
