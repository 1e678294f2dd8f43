"""The SpRAy report: one self-contained HTML page (figures inlined as base64 PNGs) and a JSON summary.

First the classes ranked by how cut off their smallest cluster is (conductance, lowest first); then per class,
in that order: the eigenvalue spectrum of ``L`` with the eigengap's suggested k, the t-SNE/UMAP pictures of the
spectral embedding coloured by cluster, and per cluster its mean heatmap and its most typical members (nearest
to the cluster's centre in the embedding), each as image and heatmap.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ..evaluate.report import STYLE, figure_html, png_bytes
from .spectral import features

EXAMPLES = 6
"""Members shown per cluster."""


# -- tables -----------------------------------------------------------------------------------------


def summary(result: Any) -> list[dict[str, Any]]:
    """One row per class in ranking order: samples, suggested k, cluster sizes at it, the conductance of the
    smallest cluster, the eigengap ``λ_{k+1} − λ_k`` and the first eigenvalues."""
    rows = []
    for rank, label in enumerate(result.ranking(), start=1):
        a = result[label]
        k = a.suggested
        rows.append({"rank": rank, "class": label, "samples": len(a.rows), "suggested_k": k,
                     "sizes": np.bincount(a.labels()).tolist(), "conductance": a.conductance,
                     "eigengap": float(a.eigenvalues[k] - a.eigenvalues[k - 1]),
                     "eigenvalues": a.eigenvalues[: min(len(a.eigenvalues), 12)].round(6).tolist()})  # fmt: skip
    return rows


def summary_json(result: Any) -> str:
    """The summary and the settings as JSON text."""
    return json.dumps({"settings": result.settings, "classes": summary(result)}, indent=1, default=str) + "\n"


# -- figures ----------------------------------------------------------------------------------------


def _figure(width: float, height: float, columns: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    return figure, figure.subplots(1, columns, squeeze=False)[0]


def spectrum_png(analysis: Any) -> bytes:
    """The eigenvalues ``λ_1 ≤ … ≤ λ_K`` of ``L`` with the suggested k's gap marked."""
    figure, (ax,) = _figure(4.2, 2.8)
    values, k = analysis.eigenvalues, analysis.suggested
    ax.plot(np.arange(1, len(values) + 1), values, "o-", markersize=3)
    ax.axvline(k + 0.5, color="C3", linestyle="--", label=f"suggested k = {k}")
    ax.set_xlabel("i")
    ax.set_ylabel("eigenvalue λ_i of L")
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(alpha=0.3)
    return png_bytes(figure)


def pictures(analysis: Any) -> dict[str, np.ndarray]:
    """The 2-D pictures to draw: t-SNE and UMAP if computed, else the 2nd and 3rd spectral coordinates."""
    found = {name: getattr(analysis, name) for name in ("tsne", "umap") if getattr(analysis, name) is not None}
    if not found:
        found["spectral (eigenvectors 2, 3)"] = analysis.embedding[:, 1:3]
    return found


def embedding_png(analysis: Any) -> bytes:
    """Each 2-D picture of the embedding, samples coloured by their cluster at the suggested k."""
    drawn = pictures(analysis)
    figure, axes = _figure(4.0 * len(drawn), 3.6, len(drawn))
    labels = analysis.labels()
    for ax, (name, points) in zip(axes, drawn.items(), strict=True):
        for cluster in range(labels.max() + 1):
            members = labels == cluster
            ax.scatter(*points[members, :2].T, s=6, color=f"C{cluster % 10}", label=f"{cluster} ({members.sum()})")
        ax.set_title(name, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    axes[-1].legend(title="cluster (size)", fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return png_bytes(figure)


def typical_members(analysis: Any, cluster: int, count: int = EXAMPLES) -> np.ndarray:
    """Positions (within the class) of the ``count`` members closest to the cluster's centre in the embedding."""
    members = np.flatnonzero(analysis.labels() == cluster)
    points = analysis.embedding[members]
    distance = np.linalg.norm(points - points.mean(0), axis=1)
    return members[np.argsort(distance, kind="stable")[:count]]


def clusters_png(analysis: Any, relevance: np.ndarray, images: np.ndarray | None = None) -> bytes:
    """A PNG: one row per cluster — its mean heatmap (of the maps divided by ``Σ|R|``), then typical members
    (image and heatmap side by side when ``images`` are given)."""
    from PIL import Image

    from ..pictures.colormaps import grid, heatmap, zoom

    maps = _maps(relevance)
    rows = []
    labels = analysis.labels()
    for cluster in range(labels.max() + 1):
        picked = typical_members(analysis, cluster)
        tiles = [heatmap(maps[labels == cluster].mean(0))[None], _spacer(maps.shape[-2:])]
        for i in picked:
            if images is not None:
                tiles.append(_gray(images[i], maps.shape[-2:])[None])
            tiles.append(heatmap(maps[i])[None])
        rows.append(np.concatenate(tiles))
    width = max(len(r) for r in rows)
    padded = [np.concatenate([r, np.ones((width - len(r), *r.shape[1:]))]) for r in rows]
    canvas = zoom(grid(np.concatenate(padded), ncols=width, pad=2), 3)
    buffer = io.BytesIO()
    Image.fromarray(np.round(np.clip(canvas, 0, 1) * 255).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


def _maps(relevance: np.ndarray) -> np.ndarray:
    """``(n, H, W)`` maps divided by ``Σ|R|``, channels summed (flat maps drawn as one row)."""
    r = np.asarray(relevance, dtype=np.float64)
    shape = r.shape[-2:] if r.ndim >= 3 else (1, r.shape[-1])
    return features(r).reshape(len(r), *shape)


def _gray(image: Any, shape: tuple[int, ...]) -> np.ndarray:
    x = np.asarray(image, dtype=np.float64).reshape(-1, *shape).mean(0)
    low, high = x.min(), x.max()
    x = (x - low) / (high - low) if high > low else np.zeros_like(x)
    return np.repeat(x[..., None], 3, axis=-1)


def _spacer(shape: tuple[int, ...]) -> np.ndarray:
    return np.ones((1, *shape, 3))


# -- the page ---------------------------------------------------------------------------------------


def html_page(result: Any, sections: Mapping[int, Mapping[str, bytes]], title: str) -> str:
    """The report page: settings, the ranking table and each class's figures (``sections``: class -> caption ->
    PNG bytes)."""
    settings = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in result.settings.items())
    head = ["rank", "class", "samples", "suggested k", "cluster sizes", "conductance of the smallest", "eigengap"]
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{_e(v)}</td>"
            for v in (
                row["rank"],
                row["class"],
                row["samples"],
                row["suggested_k"],
                row["sizes"],
                f"{row['conductance']:.4f}",
                f"{row['eigengap']:.4f}",
            )
        )
        + "</tr>"
        for row in summary(result)
    )
    parts = []
    for label in result.ranking():
        figures = "".join(figure_html(caption, png) for caption, png in sections.get(label, {}).items())
        parts.append(
            f'<section id="class-{label}"><h2>Class {_e(label)}</h2>{_e(repr(result[label]))}{figures}</section>'
        )
    return _TEMPLATE.format(
        title=_e(title), style=STYLE, settings=settings, head="".join(f"<th>{_e(h)}</th>" for h in head), body=body,
        sections="".join(parts),
    )  # fmt: skip


def _e(value: Any) -> str:
    return html.escape(str(value))


_TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>{style}</style></head>
<body>
<h1>{title}</h1>
<p>Spectral relevance analysis (SpRAy, Lapuschkin et al., Nat. Commun. 2019): per class, heatmaps divided by
their sum of absolute values, a k-nearest-neighbour graph, the eigenvalues of its normalised Laplacian
L = I &minus; D<sup>-1/2</sup>AD<sup>-1/2</sup> (a gap after &lambda;<sub>k</sub> suggests k clusters), k-means on the
spectral embedding. Classes are ranked by the conductance of their smallest cluster (the share of its
neighbourhood edges that leave it): near 0, the model treats those samples apart &mdash; look for a Clever Hans.</p>
<table>{settings}</table>
<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>
{sections}
</body></html>
"""


# -- files ------------------------------------------------------------------------------------------


def class_figures(analysis: Any, relevance: np.ndarray, images: np.ndarray | None = None) -> dict[str, bytes]:
    """Caption -> PNG bytes of one class's figures."""
    k = analysis.suggested
    return {
        f"Eigenvalues of L; the largest gap suggests k = {k}": spectrum_png(analysis),
        f"Spectral embedding in 2-D, coloured by k-means cluster (k = {k})": embedding_png(analysis),
        "Per cluster (rows): mean heatmap, then its most typical members" + (" (image, heatmap)" if images is not None
                                                                              else ""): clusters_png(
            analysis, relevance, images
        ),
    }  # fmt: skip


def write_report(
    result: Any,
    heatmaps: Callable[[int], np.ndarray],
    out: str | Path,
    images: Callable[[int], np.ndarray | None] | None = None,
    title: str = "lrpkit spectral relevance analysis",
) -> dict[str, Path]:
    """Writes ``report.html`` and ``summary.json`` into ``out``; ``heatmaps(label)`` / ``images(label)`` give a
    class's heatmaps / input images in the order of its ``rows``."""
    from ..files import atomic_write

    sections = {
        label: class_figures(result[label], heatmaps(label), images(label) if images is not None else None)
        for label in result.classes
    }
    texts = {"report.html": html_page(result, sections, title).encode(), "summary.json": summary_json(result).encode()}
    out = Path(out)
    return {name: atomic_write(out / name, lambda file, data=data: file.write(data)) for name, data in texts.items()}
