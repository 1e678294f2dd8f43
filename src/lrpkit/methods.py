"""LRP rules as values, and method specs (strings, presets, per-layer lists) resolved to one rule per layer.

Pure Python (no torch, no NumPy): shared by the PyTorch engine (``lrpkit.lrp``) and the NumPy reference
(``lrpkit.reference``), which each implement the math of every rule on their own. Definitions follow
``docs/lrp-rules.md``: Bach et al. 2015 (PLoS ONE), Montavon et al. 2017 (Pattern Recognition) and 2019
(LRP overview, in "Explainable AI", LNCS 11700).

In every rule, ``a_i`` are the layer's input activations, ``w_ij`` its weights, ``R_j`` the relevance of
output ``j``; ``stab(d) = d + eps * sign(d)`` with ``sign(0) = +1``. ``bias=True`` puts the bias into ``z_j``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from .errors import SpecError

STABILIZER = 1e-9
"""The ``eps`` of ``stab`` for every rule that does not name its own."""


def _check_number(rule: Rule, name: str, minimum: float = 0.0) -> None:
    value = getattr(rule, name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < minimum:
        raise SpecError(f"{type(rule).__name__}: {name} must be a finite number >= {minimum}, got {value!r}")


def _check_bias(rule: Rule) -> None:
    if not isinstance(getattr(rule, "bias", False), bool):
        raise SpecError(f"{type(rule).__name__}: bias must be True or False, got {rule.bias!r}")  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Rule:
    """Base of the rules for Linear and Conv layers."""

    name: ClassVar[str] = ""


@dataclass(frozen=True)
class Simple(Rule):
    """LRP-0 (Bach et al. 2015): ``R_i = sum_j a_i w_ij / (z_j + 1e-12) R_j`` (unsigned tiny constant)."""

    bias: bool = False
    name: ClassVar[str] = "simple"
    stabilizer: ClassVar[float] = 1e-12

    def __post_init__(self) -> None:
        _check_bias(self)


@dataclass(frozen=True)
class Epsilon(Rule):
    """LRP-epsilon (Bach et al. 2015): ``R_i = sum_j a_i w_ij / stab(z_j) R_j``, ``stab`` with ``epsilon``."""

    epsilon: float = 1e-6
    bias: bool = False
    name: ClassVar[str] = "epsilon"

    def __post_init__(self) -> None:
        _check_number(self, "epsilon")
        _check_bias(self)


@dataclass(frozen=True)
class AlphaBeta(Rule):
    """LRP-alpha-beta (Bach et al. 2015), ``alpha - beta = 1``, inputs of either sign.

    ``p_ij = a+_i w+_ij + a-_i w-_ij`` (positive part of ``a_i w_ij``), ``n_ij = a+_i w-_ij + a-_i w+_ij``;
    ``R_i = sum_j (alpha p_ij / stab(sum_i p_ij) - beta n_ij / stab(sum_i n_ij)) R_j``.
    With ``bias=True`` the positive bias joins ``sum_i p_ij``, the negative bias ``sum_i n_ij``.
    """

    alpha: float = 2.0
    beta: float | None = None
    bias: bool = False
    name: ClassVar[str] = "ab"

    def __post_init__(self) -> None:
        if self.beta is None:
            object.__setattr__(self, "beta", self.alpha - 1.0)
        _check_number(self, "alpha", 1.0)
        _check_number(self, "beta")
        if abs(self.alpha - self.beta - 1.0) > 1e-12:  # type: ignore[operator]
            raise SpecError(f"AlphaBeta: need alpha - beta = 1, got alpha={self.alpha}, beta={self.beta}")
        _check_bias(self)


@dataclass(frozen=True)
class ZPlus(AlphaBeta):
    """LRP-z+ (Montavon et al. 2017): ``R_i = sum_j p_ij / stab(sum_i p_ij) R_j``, i.e. ``AlphaBeta(1, 0)``."""

    alpha: float = 1.0
    beta: float | None = 0.0
    name: ClassVar[str] = "zplus"

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.alpha, self.beta) != (1.0, 0.0):
            raise SpecError("ZPlus has no parameters (it is AlphaBeta(1, 0)); use AlphaBeta for others")


@dataclass(frozen=True, eq=False)
class ZBox(Rule):
    """LRP-zB for bounded inputs ``low <= a_i <= high`` (Montavon et al. 2017).

    ``q_ij = a_i w_ij - l_i w+_ij - h_i w-_ij``; ``R_i = sum_j q_ij / stab(sum_i q_ij) R_j``.
    ``low``/``high``: numbers, or arrays broadcastable to one sample's input (per channel or per pixel);
    ``None`` takes the bounds of the network's Format layer.
    """

    low: Any = None
    high: Any = None
    bias: bool = False
    name: ClassVar[str] = "zb"

    def __post_init__(self) -> None:
        _check_bias(self)
        both = isinstance(self.low, (int, float)) and isinstance(self.high, (int, float))
        if both and not self.low < self.high:
            raise SpecError(f"ZBox: need low < high, got low={self.low}, high={self.high}")


@dataclass(frozen=True)
class WSquare(Rule):
    """LRP-w^2 (Montavon et al. 2017): ``R_i = sum_j w_ij^2 / stab(sum_i w_ij^2) R_j``; input-independent."""

    name: ClassVar[str] = "ww"


@dataclass(frozen=True)
class Flat(Rule):
    """LRP-flat: ``R_i = sum_j R_j / stab(n_j)``, ``n_j`` = number of inputs in the receptive field of ``j``."""

    name: ClassVar[str] = "flat"


@dataclass(frozen=True)
class Gamma(Rule):
    """LRP-gamma, generalised to inputs of either sign (Montavon et al. 2019; as in Zennit).

    ``u_ij = a+_i (w_ij + gamma w+_ij) + a-_i (w_ij + gamma w-_ij)``,
    ``v_ij = a+_i (w_ij + gamma w-_ij) + a-_i (w_ij + gamma w+_ij)``. Outputs whose actual value (bias
    included) is > 0 use ``R_i = sum_j u_ij / stab(sum_i u_ij) R_j``, outputs < 0 the same with ``v``.
    """

    gamma: float = 0.25
    bias: bool = False
    name: ClassVar[str] = "gamma"

    def __post_init__(self) -> None:
        _check_number(self, "gamma")
        _check_bias(self)


RULES: dict[str, type[Rule]] = {
    "simple": Simple,
    "epsilon": Epsilon,
    "ab": AlphaBeta,
    "alphabeta": AlphaBeta,
    "zplus": ZPlus,
    "zb": ZBox,
    "ww": WSquare,
    "flat": Flat,
    "gamma": Gamma,
}


def make_rule(entry: Any) -> Rule:
    """A rule from ``"name"``, ``["name", param, ...]`` (positional parameters in field order) or a Rule."""
    if isinstance(entry, Rule):
        return entry
    name, params = (entry, ()) if isinstance(entry, str) else (_head(entry), tuple(entry[1:]))
    cls = RULES.get(name.lower()) if isinstance(name, str) else None
    if cls is None:
        raise SpecError(f"unknown rule {name!r}; valid rules: {', '.join(RULES)}; presets: {', '.join(PRESETS)}")
    fields = [f.name for f in dataclasses.fields(cls)]
    if len(params) > len(fields):
        raise SpecError(f"rule {name!r} takes at most {len(fields)} parameter(s) {fields}, got {list(params)}")
    try:
        return cls(**dict(zip(fields, params, strict=False)))
    except TypeError as err:
        raise SpecError(f"rule {name!r}: {err}") from None


def _head(entry: Any) -> Any:
    if isinstance(entry, (list, tuple)) and entry:
        return entry[0]
    raise SpecError(f"a rule must be a name, [name, params...] or a Rule object, got {entry!r}")


# -- presets ------------------------------------------------------------------------------------

Kinds = Sequence[str]  # one per layer: "linear", "conv", or anything else for layers without weights


def _first(kinds: Kinds, which: tuple[str, ...] = ("linear", "conv")) -> int | None:
    return next((i for i, k in enumerate(kinds) if k in which), None)


def _layered(kinds: Kinds, dense: Rule, conv: Rule, first: Rule | None, first_of=("linear", "conv")):
    head = _first(kinds, first_of) if first is not None else None
    rules: list[Rule | None] = []
    for i, kind in enumerate(kinds):
        rule = {"linear": dense, "conv": conv}.get(kind)
        rules.append(first if i == head else rule)
    return rules


def _preset(dense: Rule, conv: Rule | None = None, first: Rule | None = None, first_of=("linear", "conv")):
    return lambda kinds: _layered(kinds, dense, conv or dense, first, first_of)


PRESETS = {
    "deeptaylor": _preset(ZPlus(), first=ZBox()),
    "zbab": _preset(AlphaBeta(2.0, 1.0), first=ZBox()),
    "wwab": _preset(AlphaBeta(2.0, 1.0), first=WSquare()),
    "epsilon_plus": _preset(Epsilon(), ZPlus()),
    "epsilon_plus_flat": _preset(Epsilon(), ZPlus(), first=Flat()),
    "epsilon_alpha2_beta1": _preset(Epsilon(), AlphaBeta(2.0, 1.0)),
    "epsilon_alpha2_beta1_flat": _preset(Epsilon(), AlphaBeta(2.0, 1.0), first=Flat()),
    "epsilon_gamma_box": _preset(Epsilon(), Gamma(0.25), first=ZBox(), first_of=("conv",)),
}
RECTIFIED = frozenset({"deeptaylor"})
"""Presets whose starting relevance is ``relu(logits) * filter`` instead of ``logits * filter``."""


@dataclass(frozen=True)
class Plan:
    """A resolved method: one rule per layer (None for layers without weights) and the top-relevance mode."""

    rules: tuple[Rule | None, ...]
    rectify: bool = False


def resolve(method: Any, kinds: Kinds) -> Plan:
    """Resolves a method spec for a network whose layers have the given kinds.

    ``method``: a rule or preset name (``"epsilon"``, ``"deeptaylor"``), ``[name, param, ...]``, a Rule, or a
    per-layer list with one entry per layer (entries of layers without weights are ignored and may be None)
    or one entry per weighted layer.
    """
    weighted = [i for i, k in enumerate(kinds) if k in ("linear", "conv")]
    if isinstance(method, str) and method.lower() in PRESETS:
        return Plan(tuple(PRESETS[method.lower()](kinds)), rectify=method.lower() in RECTIFIED)
    if isinstance(method, (Rule, str)) or _is_single(method):
        rule = make_rule(method)
        return Plan(tuple(rule if i in weighted else None for i in range(len(kinds))))
    if not isinstance(method, (list, tuple)):
        raise SpecError(f"a method must be a rule or preset name, a Rule, or a list of rules; got {method!r}")
    return Plan(_per_layer(list(method), kinds, weighted))


def _is_single(method: Any) -> bool:
    """``["ab", 2.0]`` (a name with parameters), as opposed to a per-layer list such as ``["zb", "ab"]``."""
    return (
        isinstance(method, (list, tuple))
        and bool(method)
        and isinstance(method[0], str)
        and (len(method) == 1 or (not isinstance(method[1], (str, list, tuple, Rule)) and method[1] is not None))
    )


def _per_layer(entries: list[Any], kinds: Kinds, weighted: list[int]) -> tuple[Rule | None, ...]:
    rules: list[Rule | None] = [None] * len(kinds)
    if len(entries) == len(kinds):
        for i, entry in enumerate(entries):
            if i in weighted:
                rules[i] = _entry_rule(entry, i)
    elif len(entries) == len(weighted):
        for i, entry in zip(weighted, entries, strict=True):
            rules[i] = _entry_rule(entry, i)
    else:
        raise SpecError(
            f"a per-layer method needs one entry per layer ({len(kinds)}) or per weighted layer "
            f"({len(weighted)}), got {len(entries)}"
        )
    return tuple(rules)


def _entry_rule(entry: Any, index: int) -> Rule:
    if entry is None:
        raise SpecError(f"layer {index} has weights and needs a rule, got None")
    try:
        return make_rule(entry)
    except SpecError as err:
        raise SpecError(f"layer {index}: {err}") from None
