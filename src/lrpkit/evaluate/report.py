"""The faithfulness report of :func:`lrpkit.evaluate.compare`: AOPC table, curves, heatmaps, one HTML page.

Table and figure functions are pure (results in, text or PNG bytes out); :func:`write_report` writes the files
atomically: ``aopc.md``, ``aopc.csv``, ``curves.png``, ``heatmaps.png`` and ``report.html`` (self-contained:
the images are inlined as base64 ``data:`` URLs). Intervals are 95% normal-approximation intervals of the mean
over samples; "vs. reference" is the paired per-sample AOPC difference to one method (same images, same noise).
"""

from __future__ import annotations

import base64
import html
import io
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .. import checks
from ..errors import InputError
from .faithfulness import Comparison, PixelFlippingResult, mean_interval

Results = Mapping[str, PixelFlippingResult]
COLUMNS = ("method", "aopc", "ci_low", "ci_high", "std", "samples", "delta", "delta_low", "delta_high", "seconds")


# -- tables -----------------------------------------------------------------------------------------


def reference_method(results: Results) -> str | None:
    """The method the paired differences are taken against: ``random`` if present, else none."""
    return "random" if "random" in results else None


def rows(comparison: Comparison, reference: str | None = None) -> list[dict[str, Any]]:
    """One dict per method (keys :data:`COLUMNS`), sorted by falling AOPC."""
    results = comparison.results
    if not results:
        raise InputError("the comparison holds no methods")
    reference = reference or reference_method(results)
    base = results[reference].per_sample_aopc if reference else None
    table = []
    for name, result in results.items():
        per_sample = result.per_sample_aopc
        low, high = result.interval()
        row = {"method": name, "aopc": result.aopc, "ci_low": low, "ci_high": high}
        row |= {"std": float(per_sample.std()) if len(per_sample) > 1 else 0.0, "samples": len(per_sample)}
        delta = per_sample - base if base is not None and len(base) == len(per_sample) else None
        row |= _delta(delta) | {"seconds": comparison.seconds.get(name, float("nan"))}
        table.append(row)
    return sorted(table, key=lambda row: -row["aopc"])


def _delta(delta: torch.Tensor | None) -> dict[str, float]:
    if delta is None:
        return {"delta": float("nan"), "delta_low": float("nan"), "delta_high": float("nan")}
    low, high = mean_interval(delta)
    return {"delta": float(delta.mean()), "delta_low": low, "delta_high": high}


def markdown_table(table: list[dict[str, Any]], reference: str | None = None) -> str:
    """A Markdown table of :func:`rows` output."""
    head = ["method", "AOPC", "95% interval", "samples", "s"]
    if reference:
        head.insert(3, f"vs. {reference} [95%]")
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table:
        cells = [f"`{row['method']}`", f"{row['aopc']:.4f}", f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]"]
        cells += [str(row["samples"]), f"{row['seconds']:.2f}"]
        if reference:
            cells.insert(3, f"{row['delta']:+.4f} [{row['delta_low']:+.4f}, {row['delta_high']:+.4f}]")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def csv_table(table: list[dict[str, Any]]) -> str:
    """CSV text with a header line of :data:`COLUMNS`; numbers with full precision."""
    lines = [",".join(COLUMNS)]
    for row in table:
        lines.append(",".join(_csv_cell(row[key]) for key in COLUMNS))
    return "\n".join(lines) + "\n"


def per_sample_csv(results: Results) -> str:
    """One row per sample, one column per method: the per-sample AOPC (for paired comparisons of your own)."""
    names = list(results)
    columns = [results[name].per_sample_aopc.tolist() for name in names]
    lines = [",".join(["sample", *map(_csv_cell, names)])]
    lines += [",".join([str(i), *map(repr, values)]) for i, values in enumerate(zip(*columns, strict=True))]
    return "\n".join(lines) + "\n"


def _csv_cell(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    return '"' + text.replace('"', '""') + '"' if any(c in text for c in ',"\n') else text


# -- figures ----------------------------------------------------------------------------------------


def png_bytes(figure: Any) -> bytes:
    """A matplotlib ``Figure`` as PNG bytes (100 dpi)."""
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def curves_png(results: Results) -> bytes:
    """Mean perturbation curve per method with its 95% band, against the fraction of regions replaced."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(9.5, 4.5), layout="constrained")
    ax = figure.add_subplot()
    for i, (name, result) in enumerate(sorted(results.items(), key=lambda item: -item[1].aopc)):
        curves = result.curves
        mean = curves.mean(0).numpy()
        half = 1.96 * curves.std(0).numpy() / len(curves) ** 0.5 if len(curves) > 1 else 0 * mean
        fraction = result.fractions.numpy()
        style = {"color": f"C{i % 10}", "linestyle": ("-", "--", ":")[i // 10 % 3]}  # distinct past 10 methods
        ax.plot(fraction, mean, label=f"{name} (AOPC {result.aopc:.3f})", **style)
        ax.fill_between(fraction, mean - half, mean + half, color=style["color"], alpha=0.15, linewidth=0)
    first = next(iter(results.values()))
    ax.set_xlabel(f"fraction of {first.region}x{first.region} regions replaced ({first.order}, fill {first.fill})")
    ax.set_ylabel("target score f(x) (logit)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    return png_bytes(figure)


def heatmaps_png(images: torch.Tensor, relevances: Mapping[str, torch.Tensor], count: int = 6) -> bytes:
    """A grid: the first ``count`` images in a row, then one row of heatmaps per method."""
    return png_bytes(heatmaps_figure(images, relevances, count))


def heatmaps_figure(images: torch.Tensor, relevances: Mapping[str, torch.Tensor], count: int = 6) -> Any:
    """The figure of :func:`heatmaps_png`: one row per method, named on the left (wrapped at ``_``), so that its
    width, and the size of its text in the report page, does not depend on the number of methods."""
    from matplotlib.figure import Figure

    from ..pictures.colormaps import heatmap

    count = min(count, len(images))
    names = list(relevances)
    shown = [images[i].detach().cpu().double() for i in range(count)]
    figure = Figure(figsize=(1.6 + 1.15 * count, 0.2 + 1.15 * (len(names) + 1)), layout="constrained")
    axes = figure.subplots(len(names) + 1, count, squeeze=False)
    for i, image in enumerate(shown):
        axes[0, i].imshow(image.reshape(-1, *image.shape[-2:]).sum(0).numpy(), cmap="gray")
        for row, name in enumerate(names, start=1):
            relevance = relevances[name][i].detach().cpu().double().reshape(image.shape)
            axes[row, i].imshow(heatmap(relevance.reshape(-1, *image.shape[-2:])))
    for row, name in enumerate(["input", *names]):
        axes[row, 0].set_ylabel(wrap_name(name), rotation=0, ha="right", va="center", fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    return figure


def wrap_name(name: str, width: int = 14) -> str:
    """``name`` broken into lines of at most ``width`` characters, after ``_``, ``,`` or ``(`` where possible."""
    lines, line = [], ""
    for part in re.findall(r"[^_,(]+[_,(]?|[_,(]", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
        while len(line) > width:
            lines.append(line[:width])
            line = line[width:]
    return "\n".join([*lines, line] if line else lines)


# -- the HTML page ----------------------------------------------------------------------------------


def html_page(
    title: str,
    table: list[dict[str, Any]],
    figures: Mapping[str, bytes],
    details: Mapping[str, Any],
    reference: str | None = None,
) -> str:
    """One self-contained page: settings, the AOPC table and the figures as inline base64 PNGs."""
    settings = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in details.items())
    head = ["method", "AOPC", "95% interval", *([f"vs. {reference} [95%]"] if reference else []), "samples", "s"]
    body = "".join(_html_row(row, reference is not None) for row in table)
    images = "".join(figure_html(caption, png) for caption, png in figures.items())
    return _TEMPLATE.format(
        title=html.escape(title),
        settings=settings,
        head="".join(f"<th>{html.escape(h)}</th>" for h in head),
        body=body,
        images=images,
        style=STYLE,
    )


def figure_html(caption: str, png: bytes) -> str:
    """A ``<figure>`` with the PNG inlined as a base64 ``data:`` URL and its caption."""
    src, text = f"data:image/png;base64,{base64.b64encode(png).decode()}", html.escape(caption)
    return f'<figure><img alt="{text}" src="{src}"><figcaption>{text}</figcaption></figure>'


def _e(value: Any) -> str:
    return html.escape(str(value))


def _html_row(row: dict[str, Any], with_delta: bool) -> str:
    cells = [f"<code>{html.escape(row['method'])}</code>", f"{row['aopc']:.4f}"]
    cells.append(f"[{row['ci_low']:.4f}, {row['ci_high']:.4f}]")
    if with_delta:
        cells.append(f"{row['delta']:+.4f} [{row['delta_low']:+.4f}, {row['delta_high']:+.4f}]")
    cells += [str(row["samples"]), f"{row['seconds']:.2f}"]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; }
td { font-variant-numeric: tabular-nums; }
thead th { background: #f0f0f0; }
figure { margin: 1.5em 0; } img { max-width: 100%; }
figcaption { color: #555; font-size: 0.9em; }
"""
"""The pages' style sheet (also used by the SpRAy report)."""

_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
<h1>{title}</h1>
<p>Pixel flipping / region perturbation (Samek et al., IEEE TNNLS 2017). AOPC = mean over samples of
1/(L+1) &sum;<sub>k=0..L</sub> [f(x<sub>0</sub>) &minus; f(x<sub>k</sub>)]; with MoRF order, higher means the
heatmap finds the evidence the model uses. Intervals: 95%, normal approximation over samples.</p>
<table>{settings}</table>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{images}
</body></html>
"""


# -- files ------------------------------------------------------------------------------------------


def write_report(
    out: str | Path,
    comparison: Comparison,
    images: torch.Tensor | None = None,
    title: str = "lrpkit explanation faithfulness",
    details: Mapping[str, Any] | None = None,
    heatmap_count: int = 6,
) -> dict[str, Path]:
    """Writes ``aopc.md``, ``aopc.csv``, ``aopc_per_sample.csv``, ``curves.png``, ``heatmaps.png`` (with
    ``images``) and ``report.html``."""
    from ..files import write_bytes

    reference = reference_method(comparison.results)
    table = rows(comparison, reference)
    figures = {"Mean perturbation curves (95% bands)": curves_png(comparison.results)}
    if images is not None and heatmap_count > 0:
        figures["Inputs and heatmaps per method"] = heatmaps_png(images, comparison.relevances, heatmap_count)
    texts = {
        "aopc.md": markdown_table(table, reference).encode(),
        "aopc.csv": csv_table(table).encode(),
        "aopc_per_sample.csv": per_sample_csv(comparison.results).encode(),
        "curves.png": figures["Mean perturbation curves (95% bands)"],
        "heatmaps.png": figures.get("Inputs and heatmaps per method"),
        "report.html": html_page(title, table, figures, dict(details or {}), reference).encode(),
    }
    out = Path(out)
    return {name: write_bytes(out / name, data) for name, data in texts.items() if data is not None}


# -- the evaluate-methods command -------------------------------------------------------------------


def evaluate_methods(
    model: Any,
    split: Any,
    methods: list[Any],
    out: str | Path,
    n: int = 500,
    target: str = "pred",
    seed: int = 0,
    details: Mapping[str, Any] | None = None,
    progress: bool | None = False,
    **options: Any,
) -> tuple[Comparison, dict[str, Path]]:
    """Pixel flipping of ``n`` images of ``split`` (a seeded random subset) for every method; writes the report.

    ``target``: ``"pred"`` (the predicted class) or ``"true"`` (the true label). The images are put on the
    model's dtype and device. ``options`` go to :func:`lrpkit.evaluate.pixel_flipping`; ``details`` (e.g. the
    model path) head the report's settings; ``progress``: a bar over the methods (None: on a terminal).
    """
    from .faithfulness import compare

    checks.choice(target, "target", ("pred", "true"))
    checks.positive_int(n, "n")
    pick = torch.randperm(len(split.labels), generator=torch.Generator().manual_seed(checks.seed(seed)))[:n]
    images, labels = _like_model(model, split.images[pick]), split.labels[pick]
    target = labels.to(images.device) if target == "true" else "pred"
    comparison = compare(model, images, target, methods, seed=seed, progress=progress, **options)
    first = next(iter(comparison.results.values()))
    settings = {**(details or {}), "samples": len(images), "target": target, "steps": first.curves.shape[1] - 1}
    settings |= {"region": first.region, "order": first.order, "fill": first.fill, "seed": seed}
    return comparison, write_report(out, comparison, images, details=settings)


def _like_model(model: Any, images: torch.Tensor) -> torch.Tensor:
    """``images`` in the dtype and on the device of the model's parameters (as ``explain`` and ``evaluate`` do)."""
    param = next(model.parameters(), None)
    return images if param is None else images.to(param.device, param.dtype)
