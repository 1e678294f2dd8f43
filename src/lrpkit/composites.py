"""Which rule goes where: composites as plain data, presets, and method specs resolved to one rule per node.

Pure Python (no torch, no NumPy), shared by the PyTorch engine and the NumPy reference. A
:class:`Composite` is an ordered list of ``(matcher, rule)`` pairs. A matcher is

- a node kind: ``"linear"`` (alias ``"dense"``), ``"conv"``, ``"max_pool"``, ``"avg_pool"``, ``"sum"``,
  ``"product"``, ``"norm"``, ``"opaque"`` (a module explained as one node), ``"matmul"`` (a product of two
  signals such as ``q k^T`` or attention times ``V``);
- ``"first"``: the first Linear-type layers (those the input reaches without passing another one), or
  ``"first:conv"`` / ``"first:linear"``: the first layers of that kind;
- anything else: an ``fnmatch`` pattern over a node's module path, module type or node name (``"layer4.*"``).

Precedence: a name pattern beats ``"first"``, which beats a kind, which beats the defaults (LRP-0 on Linear-type
layers, :data:`KIND_DEFAULTS` elsewhere); among entries of one level the first listed wins. A pattern applies
only to the nodes whose kind its rule fits (``Epsilon`` on ``"layer4.*"`` reaches its convs, not its ReLUs).
"""

from __future__ import annotations

import dataclasses
import fnmatch
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import SpecError
from .rules import (
    RULES,
    WEIGHTED_KINDS,
    AlphaBeta,
    Conservative,
    Epsilon,
    Flat,
    Gamma,
    Proportional,
    Rule,
    Simple,
    Uniform,
    Winner,
    WSquare,
    ZBox,
    ZPlus,
)

KINDS = ("linear", "conv", "max_pool", "avg_pool", "sum", "product", "norm", "opaque", "matmul")
ALIASES = {"dense": "linear"}
FIRST = ("first", "first:linear", "first:conv")
KIND_DEFAULTS: dict[str, Rule] = {
    "linear": Simple(),
    "conv": Simple(),
    "max_pool": Winner(),
    "avg_pool": Proportional(),
    "sum": Proportional(),
    "product": Uniform(),
    "norm": Epsilon(),
    "opaque": Epsilon(),
    "matmul": Epsilon(),
}
"""The rule of each kind that no entry of a composite matches."""


class NodeLike(Protocol):
    """What resolving needs to know of a node (``lrpkit.engine.graph.Node`` is one)."""

    name: str
    module: str
    module_type: str

    @property
    def kind(self) -> str | None: ...


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


@dataclass(frozen=True)
class Composite:
    """Ordered ``(matcher, rule)`` pairs; ``rectify``: start from ``relu(logits)`` (deep Taylor)."""

    entries: tuple[tuple[str, Rule], ...]
    rectify: bool = False

    def __post_init__(self) -> None:
        for matcher, rule in self.entries:
            kind = ALIASES.get(matcher, matcher)
            if kind in KINDS and kind not in rule.kinds:
                kinds = ", ".join(sorted(rule.kinds))
                raise SpecError(f"rule {rule.name!r} cannot apply to {matcher!r} nodes; it applies to: {kinds}")
            if matcher in FIRST and not rule.kinds & WEIGHTED_KINDS:
                raise SpecError(f"rule {rule.name!r} cannot apply to the first (Linear-type) layers")

    def to_json(self) -> dict[str, Any]:
        """``{matcher: [rule name, *params]}`` (+ ``"rectify": true``): JSON-ready, read back by :func:`composite`."""
        data: dict[str, Any] = {matcher: rule.to_json() for matcher, rule in self.entries}
        return {**data, "rectify": True} if self.rectify else data

    def __repr__(self) -> str:
        body = ", ".join(f"{m!r}: {r!r}" for m, r in self.entries)
        return f"Composite({{{body}}}{', rectify=True' if self.rectify else ''})"


def _preset(first: Rule | None, dense: Rule, conv: Rule | None = None, first_of: str = "first") -> Composite:
    head = ((first_of, first),) if first is not None else ()
    return Composite((*head, ("linear", dense), ("conv", conv or dense)))


def _attention(linear: Rule, conv: Rule, matmul: Rule, product: Rule) -> Composite:
    """AttnLRP / CP-LRP (Achtibat et al. 2024; Ali et al. 2022): rules for Linear-type layers, products of two
    signals and elementwise products; softmax, LayerNorm and the rest keep their defaults."""
    return Composite((("linear", linear), ("conv", conv), ("matmul", matmul), ("product", product)))


PRESETS: dict[str, Composite] = {
    "deeptaylor": dataclasses.replace(_preset(ZBox(), ZPlus()), rectify=True),
    "zbab": _preset(ZBox(), AlphaBeta(2.0, 1.0)),
    "wwab": _preset(WSquare(), AlphaBeta(2.0, 1.0)),
    "epsilon_plus": _preset(None, Epsilon(), ZPlus()),
    "epsilon_plus_flat": _preset(Flat(), Epsilon(), ZPlus()),
    "epsilon_alpha2_beta1": _preset(None, Epsilon(), AlphaBeta(2.0, 1.0)),
    "epsilon_alpha2_beta1_flat": _preset(Flat(), Epsilon(), AlphaBeta(2.0, 1.0)),
    "epsilon_gamma_box": _preset(ZBox(), Epsilon(), Gamma(0.25), first_of="first:conv"),
    "attnlrp": _attention(Epsilon(bias=True), Epsilon(bias=True), Epsilon(), Uniform()),
    "cp_lrp": _attention(Epsilon(bias=True), Epsilon(bias=True), Conservative(), Conservative()),
    "attnlrp_vit": _attention(Gamma(0.05, bias=True), Gamma(0.25, bias=True), Epsilon(), Uniform()),
    "cp_lrp_vit": _attention(Gamma(0.05, bias=True), Gamma(0.25, bias=True), Conservative(), Conservative()),
}
"""The named methods: deep Taylor, zB/w² + alpha-beta, Zennit's composites (same names, same rules), and for
attention models AttnLRP and CP-LRP (epsilon 1e-6 on Linear layers; the ``_vit`` variants: LXT's ViT choice,
gamma 0.25 on convolutions (the patch embedding) and 0.05 on Linear layers). The attention presets keep the biases
of Linear-type layers in the denominators and drop their share (``bias=True``), as the AttnLRP paper and LXT do —
a deviation from the rules' bias-free default, measured in bench/RESULTS.md: bias-free, AttnLRP found the planted
tokens in 0.84 of the top 3 and tied random on the MNIST ViT's pixel flipping."""


def composite(method: Any) -> Composite:
    """A method spec as a Composite: a preset or rule name, ``[name, params...]``, a Rule (on every
    Linear-type layer), a mapping ``{matcher: rule spec}`` (``"rectify": True`` allowed), or a Composite."""
    if isinstance(method, Composite):
        return method
    if isinstance(method, str) and method.lower() in PRESETS:
        return PRESETS[method.lower()]
    if isinstance(method, Mapping):
        return _from_mapping(method)
    if isinstance(method, (Rule, str)) or _is_single(method):
        rule = make_rule(method)
        if not rule.kinds & WEIGHTED_KINDS:
            return Composite(tuple((kind, rule) for kind in KINDS if kind in rule.kinds))
        return Composite((("linear", rule), ("conv", rule)))
    raise SpecError(
        "a method must be a rule or preset name, [name, params...], a Rule, a composite mapping such as "
        f"{{'conv': 'zplus', 'linear': 'epsilon'}}, or a list of rules per layer; got {method!r}"
    )


def _from_mapping(method: Mapping[str, Any]) -> Composite:
    entries = []
    for matcher, spec in method.items():
        if matcher == "rectify":
            continue
        if not isinstance(matcher, str) or not matcher:
            raise SpecError(f"a composite's keys are node kinds, 'first' or name patterns; got {matcher!r}")
        try:
            entries.append((matcher, make_rule(spec)))
        except SpecError as err:
            raise SpecError(f"composite entry {matcher!r}: {err}") from None
    rectify = method.get("rectify", False)
    if not isinstance(rectify, bool):
        raise SpecError(f"composite 'rectify' must be true or false, got {rectify!r}")
    return Composite(tuple(entries), rectify)


def check_method(method: Any) -> None:
    """:class:`SpecError` saying what is wrong unless ``method`` is an LRP method: anything :func:`composite`
    takes, or a per-layer list of rule specs (None for layers without weights)."""
    if isinstance(method, (list, tuple)) and method and not _is_single(method):
        for i, entry in enumerate(method):
            if entry is None:
                continue
            try:
                make_rule(entry)
            except SpecError as err:
                raise SpecError(f"layer {i}: {err}") from None
        return
    composite(method)


def _is_single(method: Any) -> bool:
    """``["ab", 2.0]`` (a name with parameters), as opposed to a per-layer list such as ``["zb", "ab"]``."""
    return (
        isinstance(method, (list, tuple))
        and bool(method)
        and isinstance(method[0], str)
        and (len(method) == 1 or (not isinstance(method[1], (str, list, tuple, Rule)) and method[1] is not None))
    )


# -- resolving a method on a model's nodes ----------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    """A resolved method: the rule of every node that has a kind, and the top-relevance mode."""

    rules: Mapping[str, Rule]
    rectify: bool = False
    composite: Composite | None = None


def resolve(
    method: Any,
    nodes: Sequence[NodeLike],
    first: frozenset[str] = frozenset(),
    layers: Sequence[str] | None = None,
    defaults: Mapping[str, Rule] | None = None,
) -> Plan:
    """One rule per node of ``nodes`` that has a kind. ``first``: the names of the first Linear-type nodes;
    ``layers``: the module paths of a chain model's layers (for lists with one entry per layer);
    ``defaults``: per-kind rules replacing :data:`KIND_DEFAULTS` (e.g. the ``maxpool=`` option)."""
    if isinstance(method, (list, tuple)) and not _is_single(method):
        method = _per_layer(list(method), nodes, layers)
    spec = composite(method)
    fallback = {**KIND_DEFAULTS, **(defaults or {})}
    _check_patterns(spec, nodes)
    rules = {}
    for node in nodes:
        if node.kind is not None:
            rules[node.name] = _rule_of(spec, node, node.name in first) or fallback[node.kind]
    return Plan(rules, spec.rectify, spec)


def _rule_of(spec: Composite, node: NodeLike, is_first: bool) -> Rule | None:
    kind = node.kind
    levels = [
        [r for m, r in spec.entries if _is_pattern(m) and _matches(m, node)],
        [r for m, r in spec.entries if is_first and m in ("first", f"first:{kind}")],
        [r for m, r in spec.entries if ALIASES.get(m, m) == kind],
    ]
    return next((r for level in levels for r in level if kind in r.kinds), None)


def _is_pattern(matcher: str) -> bool:
    return ALIASES.get(matcher, matcher) not in KINDS and matcher not in FIRST


def _matches(pattern: str, node: NodeLike) -> bool:
    return any(fnmatch.fnmatchcase(value, pattern) for value in (node.module, node.module_type, node.name) if value)


def _check_patterns(spec: Composite, nodes: Sequence[NodeLike]) -> None:
    for matcher, rule in spec.entries:
        if _is_pattern(matcher) and not any(_matches(matcher, n) and n.kind in rule.kinds for n in nodes):
            modules = sorted({n.module for n in nodes if n.kind in rule.kinds and n.module})[:12]
            raise SpecError(
                f"composite entry {matcher!r} ({rule.name}) matches no node it can apply to; "
                f"modules with such nodes: {', '.join(modules) or 'none'}"
            )


def _per_layer(entries: list[Any], nodes: Sequence[NodeLike], layers: Sequence[str] | None) -> dict[str, Any]:
    """A list with one rule per layer of a chain model, or one per Linear-type node, as name entries."""
    weighted = [n.name for n in nodes if n.kind in WEIGHTED_KINDS]
    if layers is not None and len(entries) == len(layers) and len(layers) != len(weighted):
        named = {name: entry for name, entry in zip(layers, entries, strict=True) if _weighted_layer(name, nodes)}
        for index, (name, entry) in enumerate(zip(layers, entries, strict=True)):
            if name in named and entry is None:
                raise SpecError(f"layer {index} ({name}) has weights and needs a rule, got None")
        return named
    if len(entries) == len(weighted):
        for name, entry in zip(weighted, entries, strict=True):
            if entry is None:
                raise SpecError(f"node {name!r} has weights and needs a rule, got None")
        return dict(zip(weighted, entries, strict=True))
    per_layer = f"one entry per layer ({len(layers)}) or " if layers is not None else ""
    raise SpecError(
        f"a per-layer method needs {per_layer}one entry per Linear-type layer ({len(weighted)}), got {len(entries)}"
    )


def _weighted_layer(module: str, nodes: Sequence[NodeLike]) -> bool:
    return any(n.module == module and n.kind in WEIGHTED_KINDS for n in nodes)
