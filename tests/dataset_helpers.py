"""Helpers shared by the dataset-job tests: a small CNN, and a dataset that logs which samples were read (to count
how often each chunk was computed) and can be slowed down (so a run can be interrupted mid-way)."""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import numpy as np

import lrpkit


def tiny_cnn(seed: int = 0) -> lrpkit.Network:
    return lrpkit.Network([lrpkit.Conv(4, 5), lrpkit.ReLU(), lrpkit.SumPool(), lrpkit.Linear(10)], seed=seed)


class LoggedDataset:
    """A map-style dataset over arrays; every read of sample ``i`` appends ``"i pid"`` to ``log`` (one line, one
    write, O_APPEND: safe from several processes) and then sleeps ``delay`` seconds."""

    def __init__(self, x: np.ndarray, labels: np.ndarray, log: str | Path, delay: float = 0.0) -> None:
        self.x, self.labels, self.log, self.delay = x, labels, str(log), delay

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, int]:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        try:
            os.write(fd, f"{i} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        time.sleep(self.delay)
        return self.x[i], int(self.labels[i])


def reads(log: str | Path) -> list[tuple[int, int]]:
    """(sample, pid) of every read logged so far."""
    path = Path(log)
    lines = path.read_text().split("\n") if path.exists() else []
    return [(int(a), int(b)) for a, b in (line.split() for line in lines if line.strip())]


def computations(log: str | Path, chunk_size: int, count: int) -> Counter:
    """How often each chunk was computed: reads of its second sample (the source's digest reads only the first,
    middle and last sample, which the tests keep off second positions)."""
    return Counter(i // chunk_size for i, _ in reads(log) if i % chunk_size == 1 and i not in (count // 2, count - 1))
