"""Speed of pixel flipping: N test images x S steps, against the floor of N * (S+1) plain forward passes.

    python bench/evaluation_speed.py [--n 1000] [--steps 100] [--batch-size 1024] [--device cpu] [--data DIR]

For lrpkit's MLP and CNN (random weights: speed does not depend on training) this times
``lrpkit.evaluate.pixel_flipping`` (MoRF, 1x1 regions, uniform fill) on ``n`` MNIST test images (random images
where no data is at hand) and the same number of forward passes, ``n * (steps + 1)`` inputs, in batches of the
same size. The ratio shows what building the perturbed inputs costs on top of scoring them (1.0 = free).
Times are medians of ``--repeats`` runs after one warm-up, the two measurements alternating.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from collections.abc import Callable

import torch

import lrpkit
from lrpkit.evaluate.faithfulness import pixel_flipping


def images(n: int, data: str | None) -> tuple[torch.Tensor, str]:
    """``n`` MNIST test images in [0, 1], or uniform noise (with a note) where MNIST cannot be loaded."""
    try:
        test = lrpkit.mnist(data).test
    except lrpkit.LrpkitError as err:
        return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(0)), f"random images ({err})"
    pick = torch.arange(n) % len(test)
    return test.images[pick], f"{n} MNIST test images ({len(test)} available)"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo on Linux), else what ``platform`` knows."""
    try:
        with open("/proc/cpuinfo") as file:
            return next(line.split(":", 1)[1].strip() for line in file if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


def median_seconds(works: list[Callable[[], object]], repeats: int, device: torch.device) -> list[float]:
    """Median time of each work; the works alternate run by run, so that background load hits them alike."""
    for work in works:
        work()  # warm-up
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for work, seconds in zip(works, times, strict=True):
            _sync(device)
            start = time.perf_counter()
            work()
            _sync(device)
            seconds.append(time.perf_counter() - start)
    return [statistics.median(seconds) for seconds in times]


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def floor(net: torch.nn.Module, x: torch.Tensor, steps: int, batch_size: int) -> Callable[[], None]:
    """The same number of inputs as pixel flipping scores, ``len(x) * (steps + 1)``, as plain forward passes."""
    total = len(x) * (steps + 1)

    def run() -> None:
        with torch.inference_mode():
            for start in range(0, total, batch_size):
                index = torch.arange(start, min(start + batch_size, total), device=x.device) // (steps + 1)
                net(x[index])

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data", metavar="DIR", help="MNIST IDX directory (default: the embedded images)")
    args = parser.parse_args()
    device = torch.device(args.device)
    x, source = images(args.n, args.data)
    x = x.to(device)
    relevance = torch.rand(x.shape, generator=torch.Generator().manual_seed(1)).to(device)
    cpu = cpu_model()
    print(f"# pixel flipping speed: {source}, {args.steps} steps, batch {args.batch_size}")
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, {cpu}\n")
    print("| model | pixel flipping (s) | forward floor (s) | ratio | inputs scored / s |")
    print("|---|---|---|---|---|")
    for name in ("mlp", "cnn"):
        net = lrpkit.ARCHITECTURES[name]().to(device).eval()

        def flip(net: torch.nn.Module = net) -> None:
            pixel_flipping(net, x, "pred", relevance, steps=args.steps, batch_size=args.batch_size)

        works = [flip, floor(net, x, args.steps, args.batch_size)]
        flipping, forward = median_seconds(works, args.repeats, device)
        rate = args.n * (args.steps + 1) / flipping
        print(f"| {name} | {flipping:.3f} | {forward:.3f} | {flipping / forward:.2f} | {rate:,.0f} |")


if __name__ == "__main__":
    main()
