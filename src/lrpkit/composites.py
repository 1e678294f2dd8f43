"""Which rule goes on which layer: presets and method specs resolved to one rule per layer, as plain data.

Pure Python (no torch, no NumPy), shared by the PyTorch engine and the NumPy reference.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .errors import SpecError
from .rules import RULES, AlphaBeta, Epsilon, Flat, Gamma, Rule, WSquare, ZBox, ZPlus


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
