"""Dataset-job benchmark: the 10,000 real MNIST test images explained by the CNN with ``epsilon_plus`` (true class)
into a store, in-process with 1 and 2 torch threads and on a local Ray with 1 and 2 workers (1 thread each), all
in one run; then the store's size in float32/float16, zstd-compressed or not. Writes the ``dataset-speed``
section of ``bench/RESULTS.md``.

    python bench/dataset_speed.py [--t10k ../shared/data/mnist-t10k] [--batch-size 256] [--steps 300]

Images/s is the wall time of one ``explain_dataset`` call into a fresh store, reading the IDX files, writing
every chunk; Ray is started once before its rows (as on a running cluster), so its rows include starting the
workers (each imports torch and loads the model) but not Ray itself. Targets (issue 10): Ray with 1 worker
within 15 % of in-process with 1 thread; Ray with 2 workers >= 1.7x Ray with 1 worker and >= 0.9x in-process
with 2 threads.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import lrpkit
from _report import environment, load_average, update_section
from lrpkit.jobs.sources import MnistSource

DEFAULT_T10K = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist-t10k"
RUNS = {
    "in-process, 1 thread": {"threads": 1},
    "in-process, 2 threads": {"threads": 2},
    "Ray, 1 worker (1 thread)": {"workers": 1, "threads": 1},
    "Ray, 2 workers (1 thread each)": {"workers": 2, "threads": 1},
}
SIZES = [("float32", "zstd"), ("float32", "none"), ("float16", "zstd"), ("float16", "none")]


def size_mib(path: Path) -> float:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20


def timed_run(net: torch.nn.Module, source: MnistSource, out: Path, batch_size: int, **kwargs) -> tuple[float, float]:
    """Seconds of the whole call, and images/s after the first chunk was finished (start-up left out), from the
    times the chunk markers were written."""
    start, wall = time.perf_counter(), time.time()
    store = lrpkit.explain_dataset(net, source, out, method="epsilon_plus", batch_size=batch_size, progress=False,
                                   **kwargs)  # fmt: skip
    seconds = time.perf_counter() - start
    assert store.complete
    done = sorted(f.stat().st_mtime for f in (out / "finished" / "c").iterdir())
    later = len(source) - batch_size  # every chunk but the first is full-sized or the last
    return seconds, later / max(done[-1] - done[0], 1e-9) if done[0] >= wall else float("nan")


def speed_rows(net, source, work: Path, batch_size: int) -> tuple[list[str], dict[str, float]]:
    import ray

    rates, lines = {}, []
    for label, kwargs in RUNS.items():
        if "workers" in kwargs and not ray.is_initialized():
            ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
        seconds, steady = timed_run(net, source, work / label.replace(" ", "_"), batch_size, **kwargs)
        rates[label] = len(source) / seconds
        lines.append(f"| {label} | {seconds:.1f} | {rates[label]:.0f} | {steady:.0f} | {done_after(work, label):.1f} |")
        print(lines[-1], flush=True)
    ray.shutdown()
    first = lrpkit.open_store(work / "in-process,_1_thread")
    for label in RUNS:
        other = lrpkit.open_store(work / label.replace(" ", "_"))
        same = np.array_equal(other.relevance[:], first.relevance[:])
        lines[list(RUNS).index(label)] += " yes |" if same else " no |"
    return lines, rates


def done_after(work: Path, label: str) -> float:
    """Seconds from the store's creation to its first finished chunk (start-up plus one chunk)."""
    out = work / label.replace(" ", "_")
    first = min(f.stat().st_mtime for f in (out / "finished" / "c").iterdir())
    return first - (out / "zarr.json").stat().st_mtime


def ratio_lines(rates: dict[str, float]) -> list[str]:
    one, two, ray1, ray2 = (rates[label] for label in RUNS)
    checks = [
        ("Ray 1 worker ÷ in-process 1 thread", ray1 / one, ">= 0.85"),
        ("Ray 2 workers ÷ Ray 1 worker", ray2 / ray1, ">= 1.7"),
        ("Ray 2 workers ÷ in-process 2 threads", ray2 / two, ">= 0.9"),
        ("in-process 2 threads ÷ 1 thread", two / one, "(for reference)"),
    ]
    return [f"| {name} | {value:.2f} | {target} |" for name, value, target in checks]


def size_lines(net, source, work: Path, batch_size: int) -> list[str]:
    lines = []
    for dtype, compression in SIZES:
        out = work / f"size-{dtype}-{compression}"
        if (dtype, compression) == ("float32", "zstd"):
            out = work / "in-process,_2_threads"  # already written with these settings
        else:
            timed_run(net, source, out, batch_size, threads=2, dtype=dtype, compression=compression)
        relevance, total = size_mib(out / "relevance"), size_mib(out)
        lines.append(f"| {dtype} | {compression} | {relevance:.1f} | {total:.1f} |")
        print(lines[-1], flush=True)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--t10k", type=Path, default=DEFAULT_T10K, help="directory with the t10k IDX files")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=300, help="training steps of the CNN (0: random weights)")
    args = parser.parse_args()
    source = MnistSource(args.t10k, "test")
    torch.set_num_threads(2)
    net = lrpkit.cnn()
    if args.steps:
        net.fit(lrpkit.mnist().train, steps=args.steps, progress=False)
    print(f"{len(source)} images from {args.t10k}; CNN trained {args.steps} steps; load {load_average()}")
    with tempfile.TemporaryDirectory(prefix="dataset-speed-") as tmp:
        work = Path(tmp)
        speed, rates = speed_rows(net, source, work, args.batch_size)
        sizes = size_lines(net, source, work, args.batch_size)
    text = "\n".join([
        "## Dataset jobs: `lrpkit explain-dataset` (bench/dataset_speed.py)", "",
        *environment(torch.device("cpu")), f"- load average before the run: {load_average()}",
        f"- {len(source)} MNIST test images, `lrpkit.cnn()` trained {args.steps} steps, `epsilon_plus`, target = true "
        f"class, chunks of {args.batch_size}, float32 zstd store; one run, in this order", "",
        "| run | seconds | images/s | images/s after the first chunk | first chunk done after (s) "
        "| store identical to in-process, 1 thread |", "|---|---|---|---|---|---|", *speed, "",
        "| ratio | measured | target |", "|---|---|---|", *ratio_lines(rates), "",
        "Store size (10,000 heatmaps of 1x28x28; MiB on disk):", "",
        "| relevance dtype | compression | `relevance/` | whole store |", "|---|---|---|---|", *sizes, "",
        "GPU: no GPU was lent to this task, so the ResNet-50-sized 224² row (images/s vs the forward+gradient floor) "
        "was not measured.",
    ])  # fmt: skip
    print(update_section("dataset-speed", text))
    print("\n".join(ratio_lines(rates)))


if __name__ == "__main__":
    main()
