"""Attribution baselines to compare LRP against, and one dispatcher for every explanation method.

Each baseline is a plain function ``f(model, x, target) -> relevance`` with ``relevance.shape == x.shape``;
``model`` is any torch module that maps ``(N, ...)`` inputs to ``(N, C)`` scores (logits). ``target`` is what
the LRP engine takes: an int class, a sequence/integer tensor of class ids per sample, a float class filter of
shape ``(C,)`` or ``(N, C)`` (the score is then ``sum_c logits_c * filter_c``), ``"pred"`` (the predicted
class) or ``None`` (zero score). With ``f(x) = sum_c logits_c(x) * filter_c``:

- ``random``: i.i.d. uniform noise in [0, 1) (the floor every method should beat);
- ``gradient``: ``df/dx_i``;
- ``sensitivity``: ``(df/dx_i)^2`` (sensitivity analysis, Simonyan et al. 2014; as in Samek et al. 2017);
- ``gradxinput``: ``x_i df/dx_i`` (Shrikumar et al. 2016);
- ``integrated_gradients``: ``(x_i - x'_i) * mean_k df/dx_i (x' + t_k (x - x'))``, ``t_k = (k + 1/2) / n``
  (Sundararajan et al. 2017; midpoint rule, baseline ``x'`` = zeros);
- ``smoothgrad``: ``mean_k df/dx_i (x + e_k)``, ``e_k ~ N(0, (noise * (high - low))^2)`` (Smilkov et al. 2017).

Gradients are taken with respect to ``x`` only: the model's parameters and ``.grad`` fields are untouched.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from . import checks
from .engine.inputs import check_tensor
from .engine.targets import class_filter
from .errors import InputError, SpecError, TargetError

Target = Any  # int | Sequence[int] | torch.Tensor | str | None
Baseline = Callable[..., torch.Tensor]


# -- inputs and targets -----------------------------------------------------------------------------


def check_x(model: nn.Module, x: Any) -> torch.Tensor:
    """``x`` as the model expects it; a lrpkit Network validates and reshapes it to ``(N, *input_shape)``."""
    return model.check_input(x) if hasattr(model, "check_input") else check_tensor(x, model)


def target_filter(logits: torch.Tensor, target: Target) -> torch.Tensor:
    """The ``(N, C)`` class filter that ``target`` selects from ``logits`` (as for the LRP engine, without "all")."""
    if isinstance(target, str) and target == "all":
        raise TargetError("target 'all' is for LRP; attribution baselines explain one target per sample")
    return class_filter(target, logits)[0].expand_as(logits)


def model_scores(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model(x)``, checked to be ``(N, classes)`` scores."""
    logits = model(x)
    if not isinstance(logits, torch.Tensor) or logits.dim() != 2 or logits.shape[0] != x.shape[0]:
        shape = tuple(logits.shape) if isinstance(logits, torch.Tensor) else type(logits).__name__
        raise InputError(f"the model must map (N, ...) inputs to (N, classes) scores; got {shape}")
    return logits


def _gradient(model: nn.Module, x: torch.Tensor, target: Target, fixed: torch.Tensor | None = None):
    """``(df/dx, filter)`` with ``f = sum(logits * filter)``; ``fixed`` reuses a filter chosen on other inputs."""
    with torch.enable_grad():
        x = x.detach().requires_grad_(True)
        logits = model_scores(model, x)
        weights = target_filter(logits.detach(), target) if fixed is None else fixed
        (grad,) = torch.autograd.grad((logits * weights).sum(), x, allow_unused=True)
    return (torch.zeros_like(x) if grad is None else grad.detach()), weights


# -- baselines --------------------------------------------------------------------------------------


def random(model: nn.Module, x: Any, target: Target = None, seed: int = 0) -> torch.Tensor:
    """Uniform noise in [0, 1) of ``x``'s shape, reproducible from ``seed`` (on any device)."""
    x = _as_tensor(x)
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(x.shape, generator=generator, dtype=torch.float64).to(x.device, x.dtype)


def gradient(model: nn.Module, x: Any, target: Target) -> torch.Tensor:
    """The input gradient ``df/dx`` of the target score."""
    shaped = check_x(model, x)
    return _gradient(model, shaped, target)[0].reshape(x.shape)


def sensitivity(model: nn.Module, x: Any, target: Target) -> torch.Tensor:
    """Sensitivity analysis: the squared input gradient ``(df/dx_i)^2``."""
    return gradient(model, x, target) ** 2


def gradient_x_input(model: nn.Module, x: Any, target: Target) -> torch.Tensor:
    """Gradient times input, ``x_i df/dx_i``."""
    return gradient(model, x, target) * x


def integrated_gradients(
    model: nn.Module, x: Any, target: Target, steps: int = 32, baseline: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Integrated gradients along the straight path from ``baseline`` to ``x`` with ``steps`` midpoints.

    ``R_i = (x_i - x'_i) / n * sum_k df/dx_i (x' + (k + 1/2)/n (x - x'))``; ``sum_i R_i ~ f(x) - f(x')``.
    The target class ("pred") is chosen at ``x`` and kept along the path. One gradient pass of N per step.
    """
    checks.positive_int(steps, "integrated_gradients: steps")
    shaped = check_x(model, x)
    start = torch.as_tensor(baseline, dtype=shaped.dtype, device=shaped.device).expand_as(shaped)
    weights = target_filter(_logits_no_grad(model, shaped), target)
    total = torch.zeros_like(shaped)
    for k in range(steps):
        point = start + (k + 0.5) / steps * (shaped - start)
        total += _gradient(model, point, target, fixed=weights)[0]
    return ((shaped - start) * total / steps).reshape(x.shape)


def smoothgrad(
    model: nn.Module,
    x: Any,
    target: Target,
    samples: int = 32,
    noise: float = 0.15,
    seed: int = 0,
    low: float = 0.0,
    high: float = 1.0,
) -> torch.Tensor:
    """SmoothGrad: the input gradient averaged over ``samples`` noisy copies of ``x``.

    Gaussian noise with standard deviation ``noise * (high - low)`` (the input range, [0, 1] for lrpkit
    networks); the target class ("pred") is chosen on the clean ``x``.
    """
    checks.positive_int(samples, "smoothgrad: samples")
    checks.number(noise, "smoothgrad: noise", minimum=0.0)
    shaped = check_x(model, x)
    weights = target_filter(_logits_no_grad(model, shaped), target)
    generator = torch.Generator().manual_seed(seed)
    total = torch.zeros_like(shaped)
    for _ in range(samples):
        draw = torch.randn(shaped.shape, generator=generator, dtype=torch.float64).to(shaped.device, shaped.dtype)
        total += _gradient(model, shaped + draw * noise * (high - low), target, fixed=weights)[0]
    return (total / samples).reshape(x.shape)


def _logits_no_grad(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model_scores(model, x)


def _as_tensor(x: Any) -> torch.Tensor:
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise InputError(f"x must be a floating point torch.Tensor, got {type(x).__name__}")
    return x


BASELINES: dict[str, Baseline] = {
    "random": random,
    "gradient": gradient,
    "sensitivity": sensitivity,
    "gradxinput": gradient_x_input,
    "integrated_gradients": integrated_gradients,
    "smoothgrad": smoothgrad,
}
"""The baselines by the names the CLI and :func:`attribute` accept."""


# -- one entry point for baselines and LRP ----------------------------------------------------------


def check_method(method: Any) -> None:
    """:class:`SpecError` unless ``method`` is a baseline or an LRP method: listing the valid names for an unknown
    name, saying what is wrong for a known rule with a bad parameter (``["ab", 0.5]``)."""
    if isinstance(method, str) and method in BASELINES:
        return
    from .composites import PRESETS
    from .composites import check_method as check_lrp
    from .rules import RULES

    try:
        check_lrp(method)
    except SpecError as err:
        head = method[0] if isinstance(method, (list, tuple)) and method else method
        if not isinstance(head, str) or head.lower() in RULES:
            raise SpecError(f"method {describe([method])[0]}: {err}") from None
        valid = ", ".join([*BASELINES, *RULES, *PRESETS])
        raise SpecError(f"unknown explanation method {method!r}; valid: {valid}") from None


def attribute(model: nn.Module, x: Any, target: Target, method: Any, **options: Any) -> torch.Tensor:
    """Relevance of ``x``'s shape from a baseline name (see :data:`BASELINES`) or any LRP method spec.

    LRP methods go to ``model.lrp`` (a lrpkit Network) or :func:`lrpkit.lrp.lrp` (a plain Sequential).
    ``options`` are passed on to the baseline (e.g. ``steps`` for integrated gradients).
    """
    if isinstance(method, str) and method in BASELINES:
        return BASELINES[method](model, x, target, **options)
    check_method(method)
    if hasattr(model, "lrp"):
        return model.lrp(x, target, method, **options)
    from .engine import lrp

    return lrp(model, x, target, method, **options)


def describe(methods: Sequence[Any]) -> list[str]:
    """Display names of method specs: ``["ab", 2.0]`` -> ``"ab(2.0)"``, a per-layer list -> ``"[zb, ab, -]"``."""
    from .composites import _is_single

    names = []
    for method in methods:
        if isinstance(method, str):
            names.append(method)
        elif isinstance(method, (list, tuple)) and _is_single(method):
            names.append(f"{method[0]}({', '.join(map(str, method[1:]))})")
        elif isinstance(method, (list, tuple)):
            names.append("[" + ", ".join("-" if m is None else describe([m])[0] for m in method) + "]")
        else:
            names.append(repr(method))
    return names
