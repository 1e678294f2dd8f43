"""Shared by the bench scripts: the environment a run was measured in, and sections of ``bench/RESULTS.md``.

Each script owns one section of RESULTS.md, between ``<!-- NAME:begin -->`` and ``<!-- NAME:end -->``; a run
replaces its own section and leaves the others alone. Files are written to a temporary path and renamed.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
TITLE = (
    "# lrpkit benchmark results\n\n"
    "Written by the scripts in `bench/` (see `bench/README.md`); each run replaces its own section.\n"
)


def version(name: str) -> str:
    """The installed version of distribution ``name``, or ``"not installed"``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


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
    """The short commit of the checkout, noting uncommitted changes to ``src/`` (the code that was measured)."""
    root = str(Path(__file__).resolve().parents[1])
    try:
        head = subprocess.run(["git", "-C", root, "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
        dirty = subprocess.run(["git", "-C", root, "diff", "--quiet", "HEAD", "--", "src"], capture_output=True)
    except OSError:
        return "unknown"
    commit = head.stdout.strip() or "unknown"
    return commit + (" with uncommitted changes in src/" if dirty.returncode == 1 else "")


def environment(device: torch.device) -> list[str]:
    """Markdown bullet lines: when, where, and which versions."""
    versions = ", ".join(f"{name} {version(name)}" for name in ("lrpkit", "torch", "zennit", "captum", "numpy"))
    return [
        f"- date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; lrpkit commit {git_commit()}",
        f"- device: {device_name(device)}",
        f"- python {platform.python_version()}; {versions}",
        f"- command: `python {' '.join(sys.argv)}`",
    ]


SECTION = re.compile(r"<!-- (?P<name>[\w.-]+):begin -->\n.*?\n<!-- (?P=name):end -->", re.DOTALL)
MODEL_ORDER = ("mlp", "cnn", "vgg16", "resnet50", "densenet121", "efficientnet_b0")


def _rank(name: str) -> tuple:
    """Section order: speed tables first (per device, in :data:`MODEL_ORDER`), then the others by name."""
    parts = name.split("-")
    if parts[0] == "speed" and len(parts) == 3:
        model = MODEL_ORDER.index(parts[2]) if parts[2] in MODEL_ORDER else len(MODEL_ORDER)
        return (0, parts[1], model, name)
    return (1, "", 0, name)


def update_section(name: str, text: str, path: Path = RESULTS) -> Path:
    """Replaces (or adds) section ``name`` of ``path`` with ``text``, keeping the sections in order and any notes
    written after a section (they stay after it); atomic write."""
    old = path.read_text() if path.exists() else TITLE
    found = list(SECTION.finditer(old))
    head = old[: found[0].start()] if found else old
    ends = [m.start() for m in found[1:]] + [len(old)]
    notes = {m["name"]: old[m.end() : end].strip() for m, end in zip(found, ends, strict=True)}  # text after a section
    blocks = {m["name"]: m[0] for m in found}
    blocks[name] = f"<!-- {name}:begin -->\n{text.rstrip()}\n<!-- {name}:end -->"
    ordered = [blocks[key] + (f"\n\n{notes[key]}" if notes.get(key) else "") for key in sorted(blocks, key=_rank)]
    new = head.rstrip() + "\n\n" + "\n\n".join(ordered) + "\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".results-", suffix=".md")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, path)
    return path
