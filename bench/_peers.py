"""The peers lrpkit is measured against: Zennit's composites and Captum's epsilon LRP.

Both are optional: :func:`missing` names what is not installed, and the scripts skip those columns with a
note. A peer explainer is a function ``(x, target) -> input relevance`` with the starting relevance
``R_top = logits * one_hot(target)`` (``relu(logits) * one_hot`` for ``deeptaylor``), as in lrpkit.

Zennit knows nothing of lrpkit's own layers, so they are mapped explicitly: ``FormatModule`` passes relevance
through (as lrpkit does); sum pooling is ``nn.AvgPool2d(divisor_override=k)``, proportional under Zennit's ``Norm``
like any average pooling. Zennit gets the canonizer it has for the model's family (:func:`zennit_canonizers`).
Captum looks up a rule per leaf module by exact type: on lrpkit Networks and Sequentials it gets an explicit rule
for every leaf and runs Flatten/padding as plain functions; other models get Captum's own defaults.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from lrpkit.model.layers import FormatModule

Explainer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

METHODS: dict[str, Any] = {
    "simple": "simple",
    "epsilon": "epsilon",
    "zplus": "zplus",
    "ab": ["ab", 2.0],
    "ww": "ww",
    "flat": "flat",
    "gamma": "gamma",
    "deeptaylor": "deeptaylor",
    "zbab": "zbab",
    "wwab": "wwab",
    "epsilon_plus": "epsilon_plus",
    "epsilon_plus_flat": "epsilon_plus_flat",
    "epsilon_alpha2_beta1": "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat": "epsilon_alpha2_beta1_flat",
    "epsilon_gamma_box": "epsilon_gamma_box",
}
"""The lrpkit methods the bench compares (name -> lrpkit method spec); each has a Zennit composite below.
``zb`` alone is left out: zB is a first-layer rule (it is in the presets)."""

ZENNIT_EPSILON = 1e-6
"""The epsilon of Zennit's Epsilon rule in every composite (Zennit's default, and lrpkit's ``Epsilon()``)."""


def missing(name: str) -> str | None:
    """None if the peer package imports, else a one-line note saying why it is skipped."""
    try:
        importlib.import_module(name)
    except ImportError as err:
        return f"{name} is not installed ({err}); its columns are skipped (`make bench-env` installs it)"
    return None


def version(name: str) -> str:
    try:
        from importlib.metadata import version as dist_version

        return dist_version(name)
    except Exception:
        return "not installed"


# -- Zennit ---------------------------------------------------------------------------------------

ZENNIT_BUILTIN = {
    "epsilon_plus": "EpsilonPlus",
    "epsilon_plus_flat": "EpsilonPlusFlat",
    "epsilon_alpha2_beta1": "EpsilonAlpha2Beta1",
    "epsilon_alpha2_beta1_flat": "EpsilonAlpha2Beta1Flat",
    "epsilon_gamma_box": "EpsilonGammaBox",
}
"""lrpkit presets that are Zennit composites of the same name (instantiated from Zennit's own classes)."""

ZENNIT_BUILT_HERE = ("simple", "epsilon", "zplus", "ab", "ww", "flat", "gamma", "deeptaylor", "zbab", "wwab")
"""lrpkit methods without a Zennit composite: built here from Zennit's rules, with the same layer assignment."""


@dataclass(frozen=True)
class ZennitSetup:
    """How Zennit's rules are configured.

    ``bias``: Zennit's default (the bias enters Epsilon, ZPlus, AlphaBeta and Gamma); False zeroes it in
    every rule. ``stabilizer``: the eps of every rule other than Epsilon (Zennit's default 1e-6; lrpkit's
    rules use 1e-9). Independent of ``bias``, Zennit's ZBox cancels the bias (``b - b+ - b- = 0``) and Flat
    leaves it out; WSquare puts ``b^2`` into its denominator by default, which lrpkit has no rule for, so
    here it is always left out (``zero_params=["bias"]``).
    """

    bias: bool = True
    stabilizer: float = 1e-6


def zennit_canonizers(name: str) -> list[Any]:
    """What Zennit 0.5.1 offers for the model ``name``: ``ResNetCanonizer`` for torchvision ResNets (BatchNorm
    merged, the residual ``+`` turned into a hookable ``Sum``), ``VGGCanonizer`` for torchvision VGGs, and
    ``SequentialMergeBatchNorm`` (BatchNorm merged into the layer registered right before it) for the rest."""
    from zennit import canonizers

    if name.removeprefix("tv_").startswith("resnet"):
        from zennit.torchvision import ResNetCanonizer

        return [ResNetCanonizer()]
    if name in ("tv_vgg16", "vgg16_bn"):
        from zennit.torchvision import VGGCanonizer

        return [VGGCanonizer()]
    return [canonizers.SequentialMergeBatchNorm()]


def zennit_composite(
    method: str, low: Any, high: Any, setup: ZennitSetup = ZennitSetup(), canonizers: list[Any] | None = None
) -> Any:
    """The Zennit composite that assigns the rules of lrpkit ``method`` to the same layers; ``canonizers``
    (default: ``SequentialMergeBatchNorm``) are applied while its hooks are registered."""
    from zennit import canonizers as zennit_canon
    from zennit import composites

    zero = None if setup.bias else ["bias"]
    low, high = _batched(low), _batched(high)
    extra = _zennit_lrpkit_layers()
    canon = canonizers if canonizers is not None else [zennit_canon.SequentialMergeBatchNorm()]
    common = {"stabilizer": setup.stabilizer, "layer_map": extra, "zero_params": zero, "canonizers": canon}
    if method in ZENNIT_BUILTIN:
        cls = getattr(composites, ZENNIT_BUILTIN[method])
        bounds = {"low": low, "high": high} if method == "epsilon_gamma_box" else {}
        return cls(epsilon=ZENNIT_EPSILON, **bounds, **common)
    dense, conv, first = _zennit_rules(method, low, high, setup.stabilizer, zero)
    layer_map = extra + composites.layer_map_base(setup.stabilizer) + _weighted_map(dense, conv)
    if first is None:
        return composites.LayerMapComposite(layer_map=layer_map, canonizers=canon)
    from zennit.types import Linear as AnyWeighted

    first_map = [(AnyWeighted, first)]
    return composites.SpecialFirstLayerMapComposite(layer_map=layer_map, first_map=first_map, canonizers=canon)


def _batched(bound: Any) -> Any:
    """Zennit broadcasts bounds against the whole batch: per-channel (C, 1, 1) bounds become (1, C, 1, 1)."""
    return bound[None] if isinstance(bound, torch.Tensor) and bound.dim() == 3 else bound


def _weighted_map(dense: Any, conv: Any) -> list[tuple[Any, Any]]:
    from zennit.types import Convolution

    return [(Convolution, conv), (nn.Linear, dense)]


def _zennit_lrpkit_layers() -> list[tuple[Any, Any]]:
    from zennit.rules import Pass

    return [(FormatModule, Pass())]


def _zennit_rules(method: str, low: Any, high: Any, stabilizer: float, zero: list[str] | None) -> tuple[Any, ...]:
    """(dense rule, conv rule, first-weighted-layer rule or None) of an lrpkit method built from Zennit's rules."""
    from zennit import rules as z

    def simple() -> Any:  # LRP-0 with lrpkit's unsigned 1e-12
        return z.Epsilon(epsilon=lambda d: d + 1e-12, zero_params=zero)

    def ab() -> Any:
        return z.AlphaBeta(alpha=2.0, beta=1.0, stabilizer=stabilizer, zero_params=zero)

    def zbox() -> Any:
        return z.ZBox(low=low, high=high, stabilizer=stabilizer, zero_params=zero)

    def wsquare() -> Any:
        return z.WSquare(stabilizer=stabilizer, zero_params=["bias"])

    table = {
        "simple": (simple, None),
        "epsilon": (lambda: z.Epsilon(epsilon=ZENNIT_EPSILON, zero_params=zero), None),
        "zplus": (lambda: z.ZPlus(stabilizer=stabilizer, zero_params=zero), None),
        "ab": (ab, None),
        "ww": (wsquare, None),
        "flat": (lambda: z.Flat(stabilizer=stabilizer), None),
        "gamma": (lambda: z.Gamma(gamma=0.25, stabilizer=stabilizer, zero_params=zero), None),
        "deeptaylor": (lambda: z.ZPlus(stabilizer=stabilizer, zero_params=zero), zbox),
        "zbab": (ab, zbox),
        "wwab": (ab, wsquare),
    }
    if method not in table:
        raise ValueError(f"no Zennit composite for {method!r}; known: {sorted(table) + sorted(ZENNIT_BUILTIN)}")
    rule, first = table[method]
    return rule(), rule(), first() if first else None


def zennit_lrp0(epsilon: float, canonizers: list[Any]) -> Any:
    """Zennit's LRP-0 with a tiny ``epsilon``: Epsilon on every Linear/Conv, Norm on sums and average pooling,
    Pass on activations and BatchNorm (Zennit's ``layer_map_base``), applied with ``canonizers``."""
    from zennit import composites, rules, types

    layer_map = [*composites.layer_map_base(epsilon), (types.Linear, rules.Epsilon(epsilon=epsilon))]
    return composites.LayerMapComposite(layer_map=layer_map, canonizers=canonizers)


def zennit_explainer(model: nn.Module, composite: Any, rectify: bool = False) -> tuple[Explainer, Any]:
    """``(explain, context)``: enter ``context`` (registers the composite's hooks) before calling ``explain``."""
    from zennit.attribution import Gradient

    attributor = Gradient(model=model, composite=composite)

    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """``target``: class ids (N,) or a float class filter (N, C), as lrpkit takes them."""

        def start(logits: torch.Tensor) -> torch.Tensor:
            top = logits.clamp(min=0) if rectify else logits
            selected = target if target.is_floating_point() else nn.functional.one_hot(target, logits.shape[1])
            return top * selected.to(logits)

        _, relevance = attributor(x.detach().requires_grad_(True), start)
        return relevance

    return explain, attributor


# -- Captum ---------------------------------------------------------------------------------------


HIDDEN_FROM_CAPTUM = (nn.Flatten, nn.ConstantPad2d)


class CaptumView(nn.Module):
    """Runs the leaf layers of a chain ``model`` in order; Flatten and padding run as plain functions hidden from
    Captum.

    Captum's LRP needs a rule for every leaf module, and Flatten/padding have none (their gradient already
    moves relevance correctly: a reshape, and the crop of the padded border). The layers are shared, not copied.
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        leaves = [m for m in model.modules() if not list(m.children())]
        self.layers = nn.ModuleList([m for m in leaves if not isinstance(m, HIDDEN_FROM_CAPTUM)])
        self._steps = [m if isinstance(m, HIDDEN_FROM_CAPTUM) else None for m in leaves]  # not registered
        self._input_shape = getattr(model, "input_shape", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._input_shape is not None:
            x = x.reshape(x.shape[0], *self._input_shape)
        layers = iter(self.layers)
        for step in self._steps:
            x = step(x) if step is not None else next(layers)(x)
        return x


def is_chain(model: nn.Module) -> bool:
    """An lrpkit Network or an ``nn.Sequential``: a chain of leaf layers :class:`CaptumView` can run in order."""
    return isinstance(model, nn.Sequential) or hasattr(model, "lrp_layers")


def _leaves(model: nn.Module) -> list[nn.Module]:
    return [m for m in model.modules() if not list(m.children())]


def _attach_captum_rules(model: nn.Module, epsilon: float, maxpool_epsilon: float) -> None:
    """Rules on the leaves of ``model``: on a :class:`CaptumView` one for every leaf; on any other model the
    epsilon rule on the leaves Captum has a default rule for (others are left to Captum, which refuses them)."""
    from captum.attr._core.lrp import SUPPORTED_LAYERS_WITH_RULES
    from captum.attr._utils.lrp_rules import EpsilonRule, IdentityRule

    view = isinstance(model, CaptumView)
    for layer in model.layers if view else _leaves(model):
        if isinstance(layer, (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d)):
            layer.rule = EpsilonRule(epsilon=maxpool_epsilon)
        elif view and isinstance(layer, (FormatModule, nn.Identity)):
            layer.rule = IdentityRule()
        elif (view and not isinstance(layer, (nn.ReLU, nn.Dropout))) or type(layer) in SUPPORTED_LAYERS_WITH_RULES:
            layer.rule = EpsilonRule(epsilon=epsilon)


def captum_explainer(model: nn.Module, epsilon: float = 1e-9, maxpool_epsilon: float | None = None) -> Explainer:
    """Captum's LRP with its EpsilonRule (bias included) on every layer with weights or pooling.

    Captum treats max pooling with the epsilon rule too (``R_i = a_i R_j / stab(z_j)`` at the arg-max), which
    keeps ``z_j / (z_j + eps)`` of ``R_j``; ``maxpool_epsilon`` (default: ``epsilon``) sets its eps apart.
    Chain models run through :class:`CaptumView`; any other model as it is.
    """
    from captum.attr import LRP

    view = CaptumView(model) if is_chain(model) else model
    lrp = LRP(view)
    pool_epsilon = epsilon if maxpool_epsilon is None else maxpool_epsilon

    def explain(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        _attach_captum_rules(view, epsilon, pool_epsilon)  # Captum deletes the rules after every call
        return lrp.attribute(x.detach().requires_grad_(True), target=target)

    return explain
