"""Speed of lrpkit's LRP against a plain input gradient, Zennit's composites, Captum's epsilon LRP and a previous
lrpkit.

    python bench/speed.py [--models mlp,cnn,vgg16,resnet50,densenet121,efficientnet_b0] [--device cpu|cuda]
                          [--threads 1] [--quick] [--no-memory] [--rounds 5] [--old-engine /path/to/old/checkout]

One table per model (lrpkit's MNIST MLP and CNN at batch 256, VGG-16 as a Sequential and torchvision's ResNet-50,
DenseNet-121 and EfficientNet-B0 at 224x224x3 batch 4; random weights): a forward pass, a plain input gradient
(forward + backward to the input), lrpkit's methods and presets, every class at once (MNIST models), the Zennit
composite with the same rules per layer and the canonizer Zennit has for the model (MNIST models, VGG-16,
ResNet-50: where Zennit's relevance is right, see ``coverage.py``), and Captum's LRP (epsilon rule everywhere;
chain models). ``--old-engine DIR`` also times the lrpkit of another checkout (``DIR/src/lrpkit``, imported as
``lrpkit_old``) on the models it explains (chains: MLP, CNN, VGG-16), in the same rounds. Times are medians over
rounds after a warm-up; in each round every job runs once, in turn, so that background load hits them alike, and
every ratio in a table comes from the same run. Peak memory is measured once per job in a fresh process (the rise
of peak RSS over the set-up, or of ``torch.cuda.max_memory_allocated``). lrpkit's capture (torch.export, once per
model and input shape, cached) happens in the warm-up; its time is reported apart. Without Zennit or Captum
installed their columns stay empty, with a note. Writes one section per model and device to ``bench/RESULTS.md``
(not with ``--quick`` or ``--no-write``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import re
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

import lrpkit
from _models import Case, make_case
from _peers import METHODS, captum_explainer, missing, zennit_canonizers, zennit_composite, zennit_explainer
from _report import environment, load_average, update_section

LABELS = {"ab": "ab (alpha 2, beta 1)"}
PRESETS = ("deeptaylor", "zbab", "wwab", *(m for m in METHODS if m.startswith("epsilon_")))
GRADIENT_TARGETS = {
    "simple": 1.3,
    "epsilon": 1.3,
    "deeptaylor": 1.6,
    "epsilon_plus": 1.6,
    "zbab": 2.5,
    "wwab": 2.5,
    "epsilon_alpha2_beta1": 2.5,
    "epsilon_alpha2_beta1_flat": 2.5,
}
"""The issue's targets: time of a method / time of a plain input gradient."""
ALL_CLASSES = ("simple", "epsilon_plus")
ALL_TARGET = 4.0  # every class at once / one class
ZENNIT_SPEEDUP_TARGET = 1.5  # presets: Zennit's time / lrpkit's time
OLD_TARGET = 1.1  # the previous engine's time x this: today's ratios must not get worse by more than 10 %


@dataclass(frozen=True)
class Targets:
    """Per model: time / gradient per method, and how much faster than Zennit every preset must be."""

    gradient: dict[str, float]
    zennit_speedup: float | None


TARGETS = {
    "mlp": Targets(GRADIENT_TARGETS, ZENNIT_SPEEDUP_TARGET),
    "cnn": Targets(GRADIENT_TARGETS, ZENNIT_SPEEDUP_TARGET),
    "vgg16": Targets(GRADIENT_TARGETS, ZENNIT_SPEEDUP_TARGET),
    "resnet50": Targets({"epsilon_plus": 1.65}, 2.0),  # issue 9
}
NO_TARGETS = Targets({}, None)
QUICK_MEMORY_ROWS = ("gradient", "epsilon_plus", "all:simple")
MODELS = ("mlp", "cnn", "vgg16", "resnet50", "densenet121", "efficientnet_b0")
CHAINS = ("mlp", "cnn", "vgg16")  # what the previous engine (--old-engine) and Captum's view explain
WITH_ZENNIT = ("mlp", "cnn", "vgg16", "resnet50")  # Zennit's relevance is right there (with its canonizer)
GRAPH_ROWS = ("simple", "epsilon", *(m for m in METHODS if m.startswith("epsilon_")))
"""The rows of DenseNet-121 and EfficientNet-B0 (ratio to a gradient only): LRP-0, epsilon, Zennit's composites."""
ROUNDS = dict.fromkeys(MODELS, 3) | {"mlp": 5, "cnn": 5}  # default rounds of repeats (224x224: seconds per call)
MAX_ROUNDS = 40  # rounds are added beyond the minimum while one model's rounds fit in 60 s (quick: 5 s)
OLD = "lrpkit-old"
ENGINES: dict[str, ModuleType] = {"lrpkit": lrpkit}
"""The lrpkit packages a job can run: this checkout's, and with ``--old-engine`` another one's as :data:`OLD`."""


@dataclass(frozen=True)
class Size:
    batch: int
    image: int = 224


SIZES = dict.fromkeys(MODELS, Size(4)) | {"mlp": Size(256), "cnn": Size(256)}
QUICK_SIZES = dict.fromkeys(MODELS, Size(1, 64)) | {"mlp": Size(16), "cnn": Size(16)}


def load_old_engine(checkout: str) -> ModuleType:
    """The lrpkit package of another checkout (``checkout/src/lrpkit``), imported as ``lrpkit_old`` next to this
    one (its imports are relative), registered in :data:`ENGINES` as :data:`OLD`."""
    root = Path(checkout).resolve() / "src" / "lrpkit"
    where = [str(root)]
    spec = importlib.util.spec_from_file_location("lrpkit_old", root / "__init__.py", submodule_search_locations=where)
    if spec is None or spec.loader is None or not root.is_dir():
        raise SystemExit(f"--old-engine: no lrpkit package at {root}")
    package = importlib.util.module_from_spec(spec)
    sys.modules["lrpkit_old"] = package
    spec.loader.exec_module(package)
    ENGINES[OLD] = package
    return package


@dataclass(frozen=True)
class Job:
    """One timed thing: ``row`` is "forward", "gradient", a method name or "all:<method>"; ``library`` who runs it."""

    row: str
    library: str

    @property
    def key(self) -> str:
        return f"{self.row}:{self.library}"


# -- what each job runs ----------------------------------------------------------------------------------


def prepare(job: Job, case: Case) -> tuple[Callable[[], Any], contextlib.AbstractContextManager]:
    """``(call, context)``: ``call`` runs the job once inside ``context`` (Zennit: its hooks registered)."""
    row, every = (job.row[4:], True) if job.row.startswith("all:") else (job.row, False)
    if job.library == "torch":
        return (forward if row == "forward" else gradient)(case), contextlib.nullcontext()
    if job.library in ENGINES:
        return _lrpkit_call(case, row, every, ENGINES[job.library]), contextlib.nullcontext()
    if job.library == "captum":
        explain = captum_explainer(case.model)
        return (lambda: explain(case.x, case.target)), contextlib.nullcontext()
    if job.library == "zennit":
        composite = zennit_composite(row, case.low, case.high, canonizers=zennit_canonizers(case.name))
        explain, context = zennit_explainer(case.model, composite, rectify=row == "deeptaylor")
        x, target = _every_class(case) if every else (case.x, case.target)
        return (lambda: explain(x, target)), context
    raise ValueError(f"unknown library {job.library!r}")


def forward(case: Case) -> Callable[[], Any]:
    def run() -> Any:
        with torch.inference_mode():
            return case.model(case.x)

    return run


def gradient(case: Case) -> Callable[[], Any]:
    """d logit[target] / d x: one forward and one backward pass (no weight gradients)."""

    def run() -> Any:
        x = case.x.detach().requires_grad_(True)
        score = case.model(x).gather(1, case.target[:, None]).sum()
        return torch.autograd.grad(score, x)[0]

    return run


def _lrpkit_call(case: Case, row: str, every: bool, package: ModuleType) -> Callable[[], Any]:
    """``package.lrp`` on the case; an lrpkit Network is rebuilt (same seed, same weights) from ``package``'s own
    classes, since another checkout's engine only takes its own Networks."""
    model = case.model
    if package is not lrpkit and case.name in package.ARCHITECTURES:
        model = package.ARCHITECTURES[case.name](seed=0).eval().to(device=case.x.device, dtype=case.x.dtype)
    bounds = None if hasattr(model, "bounds") else (case.low, case.high)
    target = "all" if every else case.target
    return lambda: package.lrp(model, case.x, target, METHODS[row], bounds=bounds)


def _every_class(case: Case) -> tuple[torch.Tensor, torch.Tensor]:
    """Every class of every sample for Zennit, which explains one output per input: the batch repeated C times."""
    n, c = case.x.shape[0], case.classes
    return case.x.repeat_interleave(c, 0), torch.arange(c, device=case.x.device).repeat(n)


def jobs_for(name: str, peers: dict[str, str | None], methods: list[str] | None = None) -> list[Job]:
    """Who runs what on model ``name`` (``peers``: None for each installed peer, else why it is missing);
    ``methods``: only these rows besides the forward pass and the gradient (None: all)."""
    libraries = ["lrpkit"] + ([OLD] if OLD in ENGINES and name in CHAINS else [])
    libraries += ["zennit"] if peers["zennit"] is None and name in WITH_ZENNIT else []
    jobs = [Job("forward", "torch"), Job("gradient", "torch")]
    for row in GRAPH_ROWS if name in ("densenet121", "efficientnet_b0") else METHODS:
        jobs += [Job(row, library) for library in libraries]
    if peers["captum"] is None and name in CHAINS:
        jobs.append(Job("epsilon", "captum"))
    if name in ("mlp", "cnn"):  # 1000 classes: every class at once is not the point on the ImageNet models
        for row in ALL_CLASSES:
            jobs += [Job(f"all:{row}", library) for library in libraries]
    if methods is not None:
        jobs = [job for job in jobs if job.row in ("forward", "gradient") or job.row in methods]
    return jobs


# -- timing ------------------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(call: Callable[[], Any], device: torch.device) -> float:
    _sync(device)
    start = time.perf_counter()
    call()
    _sync(device)
    return time.perf_counter() - start


def time_jobs(
    jobs: list[Job], case: Case, rounds: int, device: torch.device, budget: float = 60.0
) -> tuple[dict[Job, Any], int]:
    """Median seconds per job (or an error message), and the number of rounds run (see :func:`time_calls`)."""
    prepared: dict[Job, Any] = {}
    for job in jobs:
        try:
            prepared[job] = prepare(job, case)
        except Exception as err:
            prepared[job] = _error(err)
    return time_calls(prepared, rounds, device, budget)


def _error(err: Exception) -> str:
    return f"error: {type(err).__name__}: {str(err).splitlines()[0][:120] if str(err) else ''}"


def time_calls(
    calls: dict[Any, Any], rounds: int, device: torch.device, budget: float = 60.0
) -> tuple[dict[Any, Any], int]:
    """Median seconds per key of ``calls`` (``(call, context)``, or an error message), and the rounds run.

    One warm-up per call, then rounds in which every call runs once, in turn, so that background load hits
    them alike: at least ``rounds``, more (up to :data:`MAX_ROUNDS`) while they fit in ``budget`` seconds.
    A call that fails (warm-up or a round) gets its error message instead of a time.
    """
    results: dict[Any, Any] = {key: value for key, value in calls.items() if isinstance(value, str)}
    ready, warm = {}, {}
    for key, value in calls.items():
        if isinstance(value, str):
            continue
        call, context = value
        try:
            with context:
                warm[key] = timed(call, device)
            ready[key] = value
        except Exception as err:
            results[key] = _error(err)
    rounds = max(rounds, min(MAX_ROUNDS, int(budget / max(sum(warm.values()), 1e-9))))
    samples: dict[Any, list[float]] = {key: [] for key in ready}
    for _ in range(rounds):
        for key, (call, context) in list(ready.items()):
            try:
                with context:
                    samples[key].append(timed(call, device))
            except Exception as err:
                results[key] = _error(err)
                del ready[key], samples[key]
    results.update({key: statistics.median(s) for key, s in samples.items()})
    return results, rounds


# -- peak memory, one fresh process per job ------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            match = re.search(rf"^{field}:\s+(\d+) kB", f.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def _reset_peak_rss() -> bool:
    """Resets the process's peak RSS (VmHWM) to its current RSS (Linux >= 4.0); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return _status_kib("VmHWM") is not None
    except OSError:
        return False


def peak_mib(call: Callable[[], Any], device: torch.device) -> float:
    """How far one call raises the peak memory above what was in use just before it, in MiB."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        torch.cuda.synchronize(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    exact = _reset_peak_rss()
    before = _status_kib("VmRSS") or 0
    call()
    peak = _status_kib("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ((peak or 0) - before) / 2**10


def measure_memory_here(spec: str, args: argparse.Namespace) -> None:
    """Child process: builds the case, prepares one job, warms it up on one sample, prints ``{"peak_mib": ...}``.

    The one-sample warm-up takes torch's lazy start-up allocations (thread pools, kernel caches) out of the
    measurement; :func:`memory_of` fixes glibc's malloc thresholds so freed memory goes back to the system.
    """
    name, rest = spec.split(":", 1)
    row, library = rest.rsplit(":", 1)
    device = torch.device(args.device)
    case = build_case(name, args.quick, device)
    one = dataclasses.replace(case, x=case.x[:1].clone(), target=case.target[:1].clone())
    warm_up, context = prepare(Job(row, library), one)
    with context:
        warm_up()
    del warm_up, context
    call, context = prepare(Job(row, library), case)
    with context:
        print(json.dumps({"peak_mib": peak_mib(call, device)}))


MALLOC_FIXED = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
"""Fixed glibc thresholds for the memory processes: big blocks are mmapped and freed memory is returned."""


def memory_of(name: str, job: Job, args: argparse.Namespace) -> float | str:
    """Peak memory of ``job`` measured in a fresh process (see :func:`measure_memory_here`)."""
    command = [sys.executable, __file__, "--memory-of", f"{name}:{job.key}", "--device", args.device]
    command += ["--quick"] if args.quick else []
    command += ["--old-engine", args.old_engine] if args.old_engine else []
    command += ["--threads", str(args.threads)] if args.threads else []
    done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **MALLOC_FIXED})
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        return "error: " + (done.stderr.strip().splitlines() or ["no output"])[-1][:120]
    return float(json.loads(lines[-1])["peak_mib"])


def memory_jobs(jobs: list[Job], quick: bool) -> list[Job]:
    """The jobs whose memory is measured: all but Captum's (a smoke run: three rows)."""
    jobs = [job for job in jobs if job.library != "captum"]
    return [job for job in jobs if job.row in QUICK_MEMORY_ROWS] if quick else jobs


# -- the table ------------------------------------------------------------------------------------------------


def build_case(name: str, quick: bool, device: torch.device) -> Case:
    size = (QUICK_SIZES if quick else SIZES)[name]
    return make_case(name, size.batch, size.image, device=str(device))


def _ms(value: float | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value * 1e3:,.1f}"


def _mib(value: float | str | None) -> str:
    if value is None:
        return ""
    return value if isinstance(value, str) else f"{value:,.1f}"


def _ratio(numerator: Any, denominator: Any) -> float | None:
    if isinstance(numerator, float) and isinstance(denominator, float) and denominator > 0:
        return numerator / denominator
    return None


def _check(ok: bool) -> str:
    return "✓" if ok else "✗ MISSED"


def row_cells(row: str, times: dict, memory: dict, targets: Targets) -> list[str]:
    """The cells of one table row; targets that apply are checked in the last cell."""
    own = "torch" if row in ("forward", "gradient") else "lrpkit"
    mine, theirs, old = times.get(Job(row, own)), times.get(Job(row, "zennit")), times.get(Job(row, OLD))
    per_grad = _ratio(mine, times.get(Job("gradient", "torch")))
    speedup, versus_old = _ratio(theirs, mine), _ratio(mine, old)
    notes = _targets(row, mine, per_grad, speedup, versus_old, times, memory, targets)
    label = f"{LABELS.get(row[4:], row[4:])}, every class" if row.startswith("all:") else LABELS.get(row, row)
    return [
        label + (" (torch)" if own == "torch" else ""),
        _ms(mine),
        f"{per_grad:.2f}" if per_grad else "",
        _ms(old),
        f"{versus_old:.2f}" if versus_old else "",
        _ms(theirs),
        f"{speedup:.2f}" if speedup else "",
        _ms(times.get(Job(row, "captum"))),
        _mib(memory.get(Job(row, own))),
        _mib(memory.get(Job(row, OLD))),
        _mib(memory.get(Job(row, "zennit"))),
        "; ".join(notes),
    ]


def _targets(
    row: str,
    mine: Any,
    per_grad: Any,
    speedup: Any,
    versus_old: Any,
    times: dict,
    memory: dict,
    targets: Targets,
) -> list[str]:
    notes = []
    limit = targets.gradient.get(row)
    if limit and per_grad:
        notes.append(f"≤{limit}x gradient {_check(per_grad <= limit)}")
    if row.startswith("all:"):
        single = _ratio(mine, times.get(Job(row[4:], "lrpkit")))
        if single:
            notes.append(f"{single:.2f}x one class, ≤{ALL_TARGET}x {_check(single <= ALL_TARGET)}")
    if row in PRESETS and speedup and targets.zennit_speedup:
        notes.append(f"≥{targets.zennit_speedup}x faster than Zennit {_check(speedup >= targets.zennit_speedup)}")
    if versus_old:
        notes.append(f"≤{OLD_TARGET}x old engine {_check(versus_old <= OLD_TARGET)}")
    mem, theirs = memory.get(Job(row, "lrpkit")), memory.get(Job(row, "zennit"))
    if isinstance(mem, float) and isinstance(theirs, float):
        notes.append(f"memory ≤ Zennit {_check(mem <= theirs)}")
    return notes


HEADER = [
    "method",
    "lrpkit ms",
    "÷ gradient",
    "old engine ms",
    "lrpkit ÷ old",
    "Zennit ms",
    "Zennit ÷ lrpkit",
    "Captum ms",
    "lrpkit peak MiB",
    "old peak MiB",
    "Zennit peak MiB",
    "targets",
]


def table(jobs: list[Job], times: dict, memory: dict, targets: Targets) -> str:
    rows = list(dict.fromkeys(job.row for job in jobs))
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    lines += ["| " + " | ".join(row_cells(row, times, memory, targets)) + " |" for row in rows]
    return "\n".join(lines)


def describe(case: Case, rounds: int) -> str:
    shape = "x".join(map(str, case.x.shape))
    return (
        f"{case.name}: input {shape} {str(case.x.dtype).replace('torch.', '')}, {case.classes} classes; "
        f"medians of {rounds} runs after a warm-up"
    )


def capture_seconds(case: Case) -> float | str:
    """How long lrpkit's capture of the model took (torch.export and translation; in the warm-up, then cached)."""
    from lrpkit.engine.walk import explain

    bounds = None if hasattr(case.model, "bounds") else (case.low, case.high)
    try:
        return explain(case.model, case.x, case.target, "simple", bounds=bounds).prepared.seconds
    except Exception as err:
        return _error(err)


def versus_old(jobs: list[Job], times: dict) -> str:
    """The geometric mean (and range) of lrpkit ÷ old engine over the rows both ran: single rows are noisy on a
    loaded machine, the mean of many is not."""
    ratios = [_ratio(times.get(Job(job.row, "lrpkit")), times.get(job)) for job in jobs if job.library == OLD]
    ratios = [r for r in ratios if r]
    if not ratios:
        return ""
    mean = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    spread = f"from {min(ratios):.2f} to {max(ratios):.2f}"
    return f"lrpkit ÷ old engine over the {len(ratios)} rows: geometric mean {mean:.2f} ({spread})"


def old_engine_note(checkout: str) -> str:
    """Where the previous engine's numbers come from: the checkout and its commit."""
    head = subprocess.run(["git", "-C", checkout, "log", "-1", "--format=%h %s"], capture_output=True, text=True)
    return f"old engine: `{checkout}` at {head.stdout.strip()[:90] or 'unknown commit'}, imported as `lrpkit_old`"


def run_model(name: str, args: argparse.Namespace, peers: dict[str, str | None]) -> str:
    device = torch.device(args.device)
    case = build_case(name, args.quick, device)
    jobs = jobs_for(name, peers, args.methods.split(",") if args.methods else None)
    rounds = args.rounds or (1 if args.quick else ROUNDS[name])
    load_before = load_average()
    print(f"\n## {name}: {len(jobs)} jobs, at least {rounds} rounds", flush=True)
    times, rounds = time_jobs(jobs, case, rounds, device, budget=5.0 if args.quick else 60.0)
    description = describe(case, rounds)
    capture = capture_seconds(case)
    del case
    memory = {job: memory_of(name, job, args) for job in memory_jobs(jobs, args.quick)} if args.memory else {}
    old = [old_engine_note(args.old_engine), versus_old(jobs, times)] if args.old_engine and name in CHAINS else []
    text = "\n".join(
        [
            f"## {name} on {device.type}" + (f", selected rows: {args.methods}" if args.methods else ""),
            "",
            f"{description}.",
            "",
            *environment(device),
            f"- load average (1, 5, 15 min) before: {load_before}; after: {load_average()}",
            "- lrpkit's capture of the model (first call only, not in the times): "
            + (f"{capture:.2f} s" if isinstance(capture, float) else capture),
            *[f"- {note}" for note in old],
            *[f"- note: {note}" for note in peers.values() if note],
            "",
            table(jobs, times, memory, TARGETS.get(name, NO_TARGETS)),
        ]
    )
    print(text, flush=True)
    return text


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="mlp,cnn,vgg16", help=f"comma-separated, from {', '.join(MODELS)}")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--quick", action="store_true", help="smoke run: small batches, one round, no RESULTS.md")
    rounds = "minimum rounds (default 5, 224x224 models 3, quick 1)"
    parser.add_argument("--rounds", type=int, default=None, help=rounds)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (default: torch's choice)")
    parser.add_argument("--no-memory", dest="memory", action="store_false", help="skip the peak-memory processes")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update bench/RESULTS.md")
    parser.add_argument("--methods", help="only these rows (comma-separated, e.g. epsilon_plus,all:simple)")
    parser.add_argument("--old-engine", help="another checkout whose lrpkit is timed alongside (chain models)")
    parser.add_argument("--memory-of", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.old_engine:
        load_old_engine(args.old_engine)
    if args.memory_of:
        measure_memory_here(args.memory_of, args)
        return
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("--device cuda: torch sees no CUDA device here")
    peers = {"zennit": missing("zennit"), "captum": missing("captum")}
    for note in filter(None, peers.values()):
        print(f"note: {note}")
    names = [name.strip() for name in args.models.split(",")]
    unknown = [name for name in names if name not in MODELS]
    if unknown:
        sys.exit(f"unknown models {unknown}; valid: {', '.join(MODELS)}")
    for name in names:
        text = run_model(name, args, peers)
        if args.write and not args.quick:
            selected = "-selected" if args.methods else ""  # a partial table never replaces the full one
            update_section(f"speed-{torch.device(args.device).type}-{name}{selected}", text)


if __name__ == "__main__":
    main()
