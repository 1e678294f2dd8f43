"""Checks and measures of explanations: relevance conservation, and pixel flipping / AOPC.

Pixel flipping (region perturbation, Samek et al. 2017, IEEE TNNLS 28(11)): the input is split into
non-overlapping ``region x region`` patches (the last row/column of patches is smaller when the image size is
not a multiple of ``region``), each scored by the relevance summed over its pixels and channels. The patches
are replaced, in order of that score, by fill values, and the target score ``f`` (the logit the target
selects) is recorded after every step. Step ``k`` (``k = 0..steps``) has the first ``m_k`` patches replaced:

- ``per_step=None`` (default): all ``P`` patches over ``steps`` steps, ``m_k = round(k * P / steps)``;
- ``per_step=m``: ``m`` patches per step, ``m_k = min(k * m, P)`` (Samek et al.: 100 steps of one 9x9 patch).

``AOPC = 1/(L+1) * sum_{k=0..L} [f(x_0) - f(x_k)]`` with ``L = steps`` (per sample; the mean over samples is
the headline number). A higher MoRF AOPC means the explanation finds the evidence the model actually uses.
"""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .. import checks
from ..attribution import Target, check_x, model_scores, target_filter
from ..engine import totals
from ..errors import InputError, SpecError

ORDERS = ("morf", "lerf", "random")
FILLS = ("uniform", "zeros", "mean", "low")


# -- conservation ---------------------------------------------------------------------------------


def conservation(relevances: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-layer conservation ratios ``sum(R[k]) / sum(R[k+1])`` per sample, a tensor ``(N, L-1)``.

    ``relevances``: the ``L`` relevance tensors of a layer-wise explanation, ``R[0]`` in input space and
    ``R[-1]`` in readout space (``net.layerwise_lrp``). Each sum runs over all but the first (sample) axis;
    ``0/0`` counts as 1 (nothing in, nothing out), ``x/0`` is ``+-inf``. Exact conservation gives all ones.
    """
    relevances = list(relevances)
    if len(relevances) < 2:
        raise InputError(f"conservation needs at least 2 relevance tensors (input and output), got {len(relevances)}")
    n = relevances[0].shape[0] if isinstance(relevances[0], torch.Tensor) and relevances[0].dim() else None
    for k, r in enumerate(relevances):
        if not isinstance(r, torch.Tensor) or r.dim() == 0 or r.shape[0] != n:
            shape = tuple(r.shape) if isinstance(r, torch.Tensor) else type(r).__name__
            raise InputError(f"relevance {k}: expected a tensor of shape ({n}, ...), got {shape}")
    sums = torch.stack([totals(r) for r in relevances], dim=1)
    ratio = sums[:, :-1] / sums[:, 1:]
    return torch.where((sums[:, :-1] == 0) & (sums[:, 1:] == 0), torch.ones_like(ratio), ratio)


# -- pixel flipping -------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class PixelFlippingResult:
    """Perturbation curves of one explanation method.

    ``curves``: ``(N, steps+1)`` float64 target scores, ``curves[:, 0]`` on the unperturbed inputs;
    ``fractions``: ``(steps+1,)`` fraction of the regions replaced at each step.
    """

    curves: torch.Tensor
    fractions: torch.Tensor
    order: str
    fill: str
    region: int

    @property
    def per_sample_aopc(self) -> torch.Tensor:
        """``(N,)``: ``1/(L+1) sum_k [f(x_0) - f(x_k)]`` for each sample."""
        return aopc(self.curves)

    @property
    def aopc(self) -> float:
        """The mean AOPC over samples."""
        return float(self.per_sample_aopc.mean())

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """Normal-approximation confidence interval of the mean AOPC: ``mean -+ z * std / sqrt(N)``."""
        return mean_interval(self.per_sample_aopc, confidence)

    @property
    def mean_curve(self) -> torch.Tensor:
        return self.curves.mean(0)

    def __repr__(self) -> str:
        low, high = self.interval()
        return (
            f"PixelFlippingResult(samples={self.curves.shape[0]}, steps={self.curves.shape[1] - 1}, "
            f"order={self.order!r}, fill={self.fill!r}, region={self.region}, "
            f"aopc={self.aopc:.4g} [{low:.4g}, {high:.4g}])"
        )


def aopc(curves: torch.Tensor) -> torch.Tensor:
    """Per-sample area over the perturbation curve, ``mean_k (curves[:, 0] - curves[:, k])``."""
    if not isinstance(curves, torch.Tensor) or curves.dim() != 2:
        raise InputError(f"curves must be a (samples, steps+1) tensor, got {getattr(curves, 'shape', curves)!r}")
    return (curves[:, :1] - curves).mean(1)


def mean_interval(values: torch.Tensor, confidence: float = 0.95) -> tuple[float, float]:
    """``mean -+ z * std / sqrt(N)`` (normal approximation; the sample std with N-1; zero width for N=1)."""
    if not 0 < confidence < 1:
        raise SpecError(f"confidence must be in (0, 1), got {confidence!r}")
    values = values.to(torch.float64)
    mean = float(values.mean())
    if values.numel() < 2:
        return mean, mean
    z = math.sqrt(2) * float(torch.special.erfinv(torch.tensor(confidence, dtype=torch.float64)))
    half = z * float(values.std()) / math.sqrt(values.numel())
    return mean - half, mean + half


def pixel_flipping(
    model: nn.Module,
    x: Any,
    target: Target,
    relevance: torch.Tensor,
    steps: int = 100,
    region: int = 1,
    fill: str | float | torch.Tensor = "uniform",
    order: str = "morf",
    per_step: int | None = None,
    batch_size: int = 1024,
    seed: int = 0,
    low: float = 0.0,
    high: float = 1.0,
) -> PixelFlippingResult:
    """Pixel flipping / region perturbation of ``x`` in the order of ``relevance`` (see the module docstring).

    ``x``: ``(N, C, H, W)``, ``(N, H, W)`` or, with ``region=1``, ``(N, D)`` (a lrpkit Network reshapes x to
    its input shape); ``relevance``: one value per input element. ``order``: ``"morf"`` (most relevant first),
    ``"lerf"`` (least relevant first) or ``"random"``; ties keep the pixel order. ``fill``: ``"uniform"``
    (noise in [low, high], drawn once per input element from ``seed``, so the noise of a sample depends on its
    position in the batch), ``"zeros"``, ``"mean"`` (each image's own per-channel mean), ``"low"``, a number, or
    a tensor of ``x``'s shape. ``target`` (class, class ids, filter or ``"pred"``) is fixed on the unperturbed
    inputs. All ``N * (steps+1)`` perturbed inputs are built with broadcast masks and scored ``batch_size`` at a time.
    The model is used as it is: put it in eval mode first.
    """
    images, original = _images(model, x)
    _check_options(steps, region, fill, order, per_step, batch_size, low, high, seed)
    relevance = _relevance(relevance, images)
    values = _fill_values(fill, images, seed, low, high)
    ranks = _pixel_ranks(relevance, region, order, seed)
    regions = int(ranks.max()) + 1
    counts = _flip_counts(regions, steps, per_step).to(images.device)
    curves = _score_all(model, images, original, target, ranks, values, counts, batch_size)
    fill_name = fill if isinstance(fill, str) else "custom"
    return PixelFlippingResult(curves, counts.cpu().double() / regions, order, fill_name, region)


def _images(model: nn.Module, x: Any) -> tuple[torch.Tensor, torch.Size]:
    """``x`` as ``(N, C, H, W)`` and the shape the model takes."""
    shaped = check_x(model, x)
    if shaped.dim() == 4:
        return shaped, shaped.shape
    if shaped.dim() == 3:
        return shaped.unsqueeze(1), shaped.shape
    if shaped.dim() == 2:
        return shaped.reshape(shaped.shape[0], 1, 1, shaped.shape[1]), shaped.shape
    raise InputError(f"x must have shape (N, C, H, W), (N, H, W) or (N, D); got {tuple(shaped.shape)}")


def _check_options(steps, region, fill, order, per_step, batch_size, low, high, seed) -> None:
    for name, value in (("steps", steps), ("region", region), ("batch_size", batch_size)):
        checks.positive_int(value, f"pixel_flipping: {name}")
    if per_step is not None:
        checks.positive_int(per_step, "pixel_flipping: per_step")
    if isinstance(fill, str) and fill not in FILLS:
        raise SpecError(f"pixel_flipping: fill must be one of {', '.join(FILLS)}, a number or a tensor; got {fill!r}")
    checks.choice(order, "pixel_flipping: order", ORDERS)
    if checks.number(low, "pixel_flipping: low") >= checks.number(high, "pixel_flipping: high"):
        raise SpecError(f"pixel_flipping: need finite low < high, got low={low!r}, high={high!r}")
    checks.seed(seed, "pixel_flipping: seed")


def _relevance(relevance: Any, images: torch.Tensor) -> torch.Tensor:
    if not isinstance(relevance, torch.Tensor) or relevance.numel() != images.numel():
        shape = tuple(relevance.shape) if isinstance(relevance, torch.Tensor) else type(relevance).__name__
        raise InputError(f"relevance must have one value per input element, shape {tuple(images.shape)}; got {shape}")
    if not torch.isfinite(relevance).all():
        raise InputError("relevance contains NaN or Inf values")
    return relevance.detach().reshape(images.shape).to(images.device, torch.float64)


def _fill_values(fill: Any, images: torch.Tensor, seed: int, low: float, high: float) -> torch.Tensor:
    """The value each input element takes once its region is replaced, ``images``' shape."""
    if isinstance(fill, torch.Tensor):
        if fill.numel() != images.numel():
            raise InputError(f"a fill tensor must have x's shape {tuple(images.shape)}, got {tuple(fill.shape)}")
        return fill.detach().reshape(images.shape).to(images.device, images.dtype)
    if isinstance(fill, (int, float)) and not isinstance(fill, bool):
        return torch.full_like(images, float(fill))
    if fill == "uniform":
        generator = torch.Generator().manual_seed(seed)
        noise = torch.rand(images.shape, generator=generator, dtype=torch.float64)
        return (low + (high - low) * noise).to(images.device, images.dtype)
    if fill == "zeros":
        return torch.zeros_like(images)
    if fill == "mean":
        return images.mean((2, 3), keepdim=True).expand_as(images)
    if fill == "low":
        return torch.full_like(images, low)
    raise SpecError(f"pixel_flipping: fill must be one of {', '.join(FILLS)}, a number or a tensor; got {fill!r}")


def _pixel_ranks(relevance: torch.Tensor, region: int, order: str, seed: int) -> torch.Tensor:
    """``(N, H*W)``: for each pixel, the position of its region in the flipping order (0 = flipped first)."""
    n, _, h, w = relevance.shape
    cols = -(-w // region)
    rows = torch.arange(h, device=relevance.device) // region
    ids = (rows[:, None] * cols + torch.arange(w, device=relevance.device) // region).reshape(-1)
    count = int(ids.max()) + 1
    scores = torch.zeros(n, count, dtype=torch.float64, device=relevance.device)
    scores.index_add_(1, ids, relevance.sum(1).reshape(n, -1))
    if order == "random":
        generator = torch.Generator().manual_seed(seed)
        scores = torch.rand(n, count, generator=generator, dtype=torch.float64).to(relevance.device)
    sequence = torch.sort(scores, dim=1, descending=order != "lerf", stable=True).indices
    rank = torch.empty_like(sequence)
    rank.scatter_(1, sequence, torch.arange(count, device=relevance.device).expand(n, count))
    return rank[:, ids].to(torch.int32)


def _flip_counts(regions: int, steps: int, per_step: int | None) -> torch.Tensor:
    """``(steps+1,)``: how many regions are replaced after each step."""
    k = torch.arange(steps + 1, dtype=torch.float64)
    if per_step is None:
        return torch.round(k * regions / steps).long()
    return torch.clamp(k.long() * per_step, max=regions)


def _score_all(model, images, original, target, ranks, values, counts, batch_size) -> torch.Tensor:
    """``(N, steps+1)`` target scores, in blocks of whole samples x runs of steps (<= ``batch_size`` inputs each)."""
    n, c, h, w = images.shape
    per = len(counts)
    flat_x, flat_fill = images.reshape(n, 1, c, h * w), values.reshape(n, 1, c, h * w)
    samples, steps = max(1, batch_size // per), min(per, batch_size)
    scores = torch.empty(n, per, dtype=torch.float64, device=images.device)
    with torch.inference_mode():
        weights = target_filter(model_scores(model, images.reshape(original)), target)
        for a in range(0, n, samples):
            b = min(a + samples, n)
            for k in range(0, per, steps):
                flipped = ranks[a:b, None, None, :] < counts[None, k : k + steps, None, None]  # (B, K, 1, H*W)
                batch = torch.where(flipped, flat_fill[a:b], flat_x[a:b])  # (B, K, C, H*W)
                logits = model_scores(model, batch.reshape(-1, *original[1:])).reshape(b - a, -1, weights.shape[1])
                scores[a:b, k : k + steps] = (logits * weights[a:b, None]).sum(2).double()
    return scores.cpu()


# -- comparing explanation methods ----------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class Comparison:
    """Pixel flipping of several methods on the same inputs: results, relevances and seconds, keyed by name."""

    results: dict[str, PixelFlippingResult]
    relevances: dict[str, torch.Tensor]
    seconds: dict[str, float]

    def __repr__(self) -> str:
        ranked = sorted(self.results.items(), key=lambda item: -item[1].aopc)
        return "Comparison(" + ", ".join(f"{name}={result.aopc:.4g}" for name, result in ranked) + ")"


def compare(
    model: nn.Module, x: Any, target: Target, methods: Sequence[Any], progress: bool | None = False, **options: Any
) -> Comparison:
    """Explains ``x`` with every method (baseline name or LRP method spec) and runs :func:`pixel_flipping`.

    ``options`` go to :func:`pixel_flipping` (steps, region, fill, order, per_step, batch_size, seed, low,
    high). All methods are checked before any work starts; relevances are kept on the CPU. ``progress``: a
    bar over the methods (None: on a terminal or in a notebook).
    """
    from ..attribution import attribute, check_method, describe
    from ..progress import bar

    for method in methods:
        check_method(method)
    _check_compare_options(options)
    results, relevances, seconds = {}, {}, {}
    for name, method in bar(list(zip(describe(methods), methods, strict=True)), "methods", progress):
        start = time.perf_counter()
        relevance = attribute(model, x, target, method).detach()
        results[name] = pixel_flipping(model, x, target, relevance, **options)
        seconds[name] = time.perf_counter() - start
        relevances[name] = relevance.cpu()
    return Comparison(results, relevances, seconds)


def _check_compare_options(options: dict[str, Any]) -> None:
    """Checks :func:`pixel_flipping` options (names and values) before any explanation is computed."""
    try:
        bound = inspect.signature(pixel_flipping).bind(None, None, None, None, **options)
    except TypeError as err:
        raise SpecError(f"pixel_flipping options: {err}") from None
    bound.apply_defaults()
    names = ("steps", "region", "fill", "order", "per_step", "batch_size", "low", "high", "seed")
    _check_options(*(bound.arguments[name] for name in names))
