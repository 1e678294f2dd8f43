"""Which torchvision classifiers lrpkit, Zennit and Captum explain, whether relevance is conserved, and at what cost.

    python bench/coverage.py [--models resnet18,densenet121] [--threads 1] [--rounds 3] [--quick] [--no-write]

For each classifier of issue 9 (torchvision, random weights, eval mode; googlenet without aux logits):

- runs: whether the library explains the model at all (its error, first line, is listed under the table);
- conservation: the model in float64 with every bias zeroed (and BatchNorm's running mean) is a bias-free
  function, so LRP-0 must give ``sum(R_input) = R_top = logit[target]``. Reported per sample as
  ``|sum R_input - R_top| / |R_top|``, the worst sample. Every library runs LRP-0 with a scale-free epsilon of
  :data:`TINY`: random-init, bias-free logits can be ~1e-14 (efficientnet_b0, googlenet), where LRP-0's usual
  1e-12 would eat the relevance. lrpkit: ``Epsilon(1e-30)`` on Linear/Conv/norm nodes, ``Proportional(1e-30)`` on
  sums and average pooling; Zennit: ``Epsilon(1e-30)`` on Linear/Conv, ``Norm(1e-30)`` on its ``Sum`` and average
  pooling, ``Pass`` on activations and BatchNorm, with the canonizer it has for the family
  (``_peers.zennit_canonizers``), its own output as ``R_top``; Captum: ``EpsilonRule(1e-30)`` on every layer type
  it has a rule for, its defaults otherwise;
- speed (float32, batch :data:`BATCH`, 224x224): ``epsilon_plus`` time / a plain input gradient, lrpkit and Zennit
  (with its canonizer), medians of interleaved rounds after one warm-up each; lrpkit's capture time
  (torch.export + translation, once per model and input shape, then cached) is reported apart.

Writes the table to ``bench/RESULTS.md`` (section "coverage"; other model lists get their own section).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

import lrpkit
from _models import TORCHVISION, Case, make_case, zero_biases
from _peers import captum_explainer, missing, zennit_canonizers, zennit_composite, zennit_explainer, zennit_lrp0
from _report import environment, load_average, update_section
from lrpkit.engine.walk import explain
from speed import gradient, time_calls

TINY = 1e-30
ACCEPT = 1e-5  # issue 9: lrpkit conserves to this with biases left out
BATCH = 2
SIZE = 224
QUICK_SIZE = 64
SPEED_METHOD = "epsilon_plus"
SCALE_FREE = {
    "linear": lrpkit.Epsilon(TINY),
    "conv": lrpkit.Epsilon(TINY),
    "norm": lrpkit.Epsilon(TINY),
    "sum": lrpkit.Proportional(TINY),
    "avg_pool": lrpkit.Proportional(TINY),
}
"""LRP-0 without a scale: ``stab(z) = z + 1e-30 sign(z)`` everywhere (max pooling: winner-take-all)."""


@dataclass
class Row:
    """One model's results; a ``str`` in place of a number is the error that stopped that measurement."""

    model: str
    gaps: dict[str, float | str] = dataclasses.field(default_factory=dict)  # library -> conservation gap
    per_gradient: dict[str, float | str] = dataclasses.field(default_factory=dict)  # library -> time / gradient
    gradient_ms: float | str = ""
    capture_s: float | str = ""
    zennit_canonizer: str = ""  # the canonizer Zennit ran with ("none (X fails)" where the family's one fails)


# -- conservation -------------------------------------------------------------------------------------------------


def relative_gap(R: torch.Tensor, top: torch.Tensor) -> float:
    """max over samples of ``|sum R - sum R_top| / |sum R_top|``."""
    total, start = R.detach().flatten(1).sum(1), top.detach().flatten(1).sum(1)
    return float(((total - start).abs() / start.abs().clamp(min=torch.finfo(start.dtype).tiny)).max())


def one_hot(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    return nn.functional.one_hot(target, logits.shape[1]).to(logits)


def lrpkit_gap(case: Case) -> float:
    R = lrpkit.lrp(case.model, case.x, case.target, SCALE_FREE)
    with torch.no_grad():
        logits = case.model(case.x)
    return relative_gap(R, logits * one_hot(case.target, logits))


def zennit_gap(case: Case, canonizers: list[Any]) -> float:
    from zennit.attribution import Gradient

    attributor = Gradient(model=case.model, composite=zennit_lrp0(TINY, canonizers))
    with attributor:
        logits, R = attributor(case.x.detach().requires_grad_(True), lambda out: out * one_hot(case.target, out))
    return relative_gap(R, logits * one_hot(case.target, logits))


def captum_gap(case: Case) -> float:
    R = captum_explainer(case.model, TINY)(case.x, case.target)
    with torch.no_grad():
        logits = case.model(case.x)
    return relative_gap(R, logits * one_hot(case.target, logits))


def attempt(measure: Callable[[Case], float], case: Case) -> float | str:
    """``measure(case)``, or the first line of the error it raised."""
    try:
        return measure(case)
    except Exception as err:
        first = next((line for line in str(err).splitlines() if line.strip()), "")
        return f"{type(err).__name__}: {first[:200]}"


def case_name(name: str) -> str:
    """torchvision's VGG-16 is ``tv_vgg16`` in ``_models`` (``vgg16`` is the plain Sequential of the speed tables)."""
    return "tv_vgg16" if name == "vgg16" else name


def conservation(name: str, size: int, libraries: list[str]) -> tuple[dict[str, float | str], str]:
    """Each library's gap on its own float64, bias-free copy of ``name``, and the canonizer Zennit ran with:
    the one it has for the family, or none where that one fails (its error is then Zennit's first result)."""
    base = make_case(case_name(name), BATCH, size, dtype=torch.float64)
    base = dataclasses.replace(base, model=zero_biases(base.model))

    def fresh() -> Case:  # a canonizer that fails half-way leaves its model changed: every run gets a copy
        return dataclasses.replace(base, model=copy.deepcopy(base.model))

    gaps: dict[str, float | str] = {}
    canonizer = ""
    if "lrpkit" in libraries:
        gaps["lrpkit"] = attempt(lrpkit_gap, fresh())
    if "captum" in libraries:
        gaps["captum"] = attempt(captum_gap, fresh())
    if "zennit" in libraries:
        family = zennit_canonizers(case_name(name))
        canonizer = ", ".join(type(c).__name__ for c in family)
        gaps["zennit"] = attempt(lambda case: zennit_gap(case, family), fresh())
        if isinstance(gaps["zennit"], str):
            gaps["zennit (failed)"] = gaps["zennit"]
            gaps["zennit"] = attempt(lambda case: zennit_gap(case, []), fresh())
            canonizer = f"none ({canonizer} fails)"
    print(f"  {name} conservation: {gaps}; Zennit canonizer {canonizer}", flush=True)
    return gaps, canonizer


# -- speed ----------------------------------------------------------------------------------------------------------


def speed(name: str, size: int, libraries: list[str], canonizer: str, rounds: int, budget: float) -> tuple:
    """(library -> time of ``epsilon_plus`` / gradient or error, gradient seconds or error, capture seconds).
    Zennit runs on its own copy of the model, with the canonizer it ran with for conservation."""
    case = make_case(case_name(name), BATCH, size)
    calls: dict[str, Any] = {
        "gradient": (gradient(case), contextlib.nullcontext()),
        "lrpkit": (lambda: lrpkit.lrp(case.model, case.x, case.target, SPEED_METHOD), contextlib.nullcontext()),
    }
    if "zennit" in libraries:
        own = dataclasses.replace(case, model=copy.deepcopy(case.model))
        canonizers = [] if canonizer.startswith("none") else zennit_canonizers(case_name(name))
        composite = zennit_composite(SPEED_METHOD, case.low, case.high, canonizers=canonizers)
        explain_zennit, context = zennit_explainer(own.model, composite)
        calls["zennit"] = (lambda: explain_zennit(own.x, own.target), context)
    times, _ = time_calls(calls, rounds, torch.device("cpu"), budget)
    grad = times.pop("gradient")
    ratios = {lib: t / grad if isinstance(t, float) and isinstance(grad, float) else t for lib, t in times.items()}
    try:
        capture_s: float | str = explain(case.model, case.x, case.target, SPEED_METHOD).prepared.seconds
    except Exception as err:
        capture_s = type(err).__name__
    return ratios, grad, capture_s


# -- the table -------------------------------------------------------------------------------------------------------


def gap_cell(value: float | str) -> str:
    if isinstance(value, str):
        return "✗ error" if value else ""
    mark = "✓" if value <= ACCEPT else "✗"
    return f"{value:.1e} {mark}"


def ratio_cell(value: float | str | None) -> str:
    if value is None or value == "":
        return ""
    return "error" if isinstance(value, str) else f"{value:.2f}"


HEADER = [
    "model",
    "lrpkit conservation gap",
    "lrpkit ε+ ÷ gradient",
    "lrpkit capture s",
    "gradient ms",
    "Zennit canonizer",
    "Zennit conservation gap",
    "Zennit ε+ ÷ gradient",
    "Captum conservation gap",
]


def table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for row in rows:
        cells = [
            row.model,
            gap_cell(row.gaps.get("lrpkit", "")),
            ratio_cell(row.per_gradient.get("lrpkit")),
            row.capture_s if isinstance(row.capture_s, str) else f"{row.capture_s:.2f}",
            row.gradient_ms if isinstance(row.gradient_ms, str) else f"{row.gradient_ms * 1e3:,.0f}",
            row.zennit_canonizer,
            gap_cell(row.gaps.get("zennit", "")),
            ratio_cell(row.per_gradient.get("zennit")),
            gap_cell(row.gaps.get("captum", "")),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def errors(rows: list[Row]) -> list[str]:
    """One line per error: model, library, what it raised."""
    found = []
    for row in rows:
        for what, values in (("conservation", row.gaps), ("speed", row.per_gradient)):
            for library, value in values.items():
                repeated = what == "speed" and isinstance(row.gaps.get(library), str)  # listed as conservation
                if isinstance(value, str) and value and not repeated:
                    found.append(f"- {row.model}, {library} ({what}): `{value}`")
    return found


def summary(rows: list[Row]) -> str:
    """How many models each library explains, and how many of those it conserves to :data:`ACCEPT`."""
    parts = []
    for library in ("lrpkit", "zennit", "captum"):
        values = [row.gaps[library] for row in rows if library in row.gaps]
        runs = [v for v in values if isinstance(v, float)]
        exact = [v for v in runs if v <= ACCEPT]
        parts.append(f"{library}: runs on {len(runs)}/{len(values)}, conserves (≤ {ACCEPT:g}) on {len(exact)}")
    return "; ".join(parts)


def report(rows: list[Row], args: argparse.Namespace, load_before: str, libraries: list[str]) -> str:
    size = QUICK_SIZE if args.quick else SIZE
    found = errors(rows)
    return "\n".join(
        [
            "## Coverage: torchvision classifiers",
            "",
            f"Random weights, eval mode. Conservation: float64, every bias zeroed, LRP-0 with epsilon {TINY:g} "
            f"(see `bench/coverage.py`), batch {BATCH}, {size}x{size}; per sample |sum R_input - R_top| / |R_top|, "
            f"the worst sample (✓: ≤ {ACCEPT:g}). Speed: float32, batch {BATCH}, {size}x{size}, `{SPEED_METHOD}` "
            "over a plain input gradient (medians of interleaved rounds after a warm-up); capture time apart "
            "(once per model and input shape).",
            "",
            *environment(torch.device("cpu")),
            f"- load average (1, 5, 15 min) before: {load_before}; after: {load_average()}",
            *[f"- note: {missing(lib)}" for lib in ("zennit", "captum") if lib not in libraries],
            f"- summary: {summary(rows)}",
            "",
            table(rows),
            "",
            *(["Errors (first line of each):", "", *found] if found else []),
        ]
    )


def run(name: str, args: argparse.Namespace, libraries: list[str]) -> Row:
    size = QUICK_SIZE if args.quick else SIZE
    print(f"\n## {name}", flush=True)
    gaps, canonizer = conservation(name, size, libraries)
    row = Row(name, gaps=gaps, zennit_canonizer=canonizer)
    budget = 3.0 if args.quick else args.budget
    rounds = 1 if args.quick else args.rounds
    row.per_gradient, row.gradient_ms, row.capture_s = speed(name, size, libraries, canonizer, rounds, budget)
    print(f"  {name} speed: {row.per_gradient}, gradient {row.gradient_ms}, capture {row.capture_s}", flush=True)
    return row


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(TORCHVISION), help="comma-separated torchvision model names")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--rounds", type=int, default=3, help="minimum timing rounds per model (default 3)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds of timing rounds per model (more rounds)")
    quick = f"smoke run: {QUICK_SIZE}x{QUICK_SIZE}, one round, no RESULTS.md"
    parser.add_argument("--quick", action="store_true", help=quick)
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update bench/RESULTS.md")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    libraries = ["lrpkit"] + [lib for lib in ("zennit", "captum") if missing(lib) is None]
    names = [name.strip() for name in args.models.split(",")]
    unknown = [name for name in names if name not in TORCHVISION]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; valid: {', '.join(TORCHVISION)}")
    load_before = load_average()
    rows = [run(name, args, libraries) for name in names]
    text = report(rows, args, load_before, libraries)
    print(text, flush=True)
    if args.write and not args.quick:
        section = "coverage" if tuple(names) == TORCHVISION else "coverage-" + "-".join(names)
        update_section(section, text)


if __name__ == "__main__":
    main()
