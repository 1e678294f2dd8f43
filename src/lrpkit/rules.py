"""LRP rules as values: frozen dataclasses with checked parameters and the equation in the docstring.

Pure Python (no torch, no NumPy): shared by the PyTorch engine (``lrpkit.lrp``) and the NumPy reference
(``lrpkit.reference``), which each implement the math of every rule on their own. Definitions follow
``docs/lrp-rules.md``: Bach et al. 2015 (PLoS ONE), Montavon et al. 2017 (Pattern Recognition) and 2019
(LRP overview, in "Explainable AI", LNCS 11700).

In every rule, ``a_i`` are the layer's input activations, ``w_ij`` its weights, ``R_j`` the relevance of
output ``j``; ``stab(d) = d + eps * sign(d)`` with ``sign(0) = +1``. ``bias=True`` puts the bias into ``z_j``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from . import checks
from .errors import SpecError

STABILIZER = 1e-9
"""The ``eps`` of ``stab`` for every rule that does not name its own."""


def _check_number(rule: Rule, name: str, minimum: float = 0.0) -> None:
    checks.number(getattr(rule, name), f"{type(rule).__name__}: {name}", minimum=minimum)


def _check_bias(rule: Rule) -> None:
    checks.flag(getattr(rule, "bias", False), f"{type(rule).__name__}: bias")


WEIGHTED_KINDS = frozenset({"linear", "conv"})


@dataclass(frozen=True)
class Rule:
    """Base of every rule: ``kinds`` are the node kinds it applies to (``lrpkit.engine.graph.KINDS``)."""

    name: ClassVar[str] = ""
    kinds: ClassVar[frozenset[str]] = WEIGHTED_KINDS

    def to_json(self) -> list[Any]:
        """``[name, *parameters]`` with arrays as nested lists: plain data, read back by ``make_rule``."""
        values = [_plain(getattr(self, f.name)) for f in dataclasses.fields(self)]
        while values and values[-1] == _plain(dataclasses.fields(self)[len(values) - 1].default):
            values.pop()  # parameters left at their defaults are left out
        return [self.name, *values]


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
    """LRP-epsilon (Bach et al. 2015): ``R_i = sum_j a_i w_ij / stab(z_j) R_j``, ``stab`` with ``epsilon``.

    On a LayerNorm/GroupNorm (kind ``norm``) it is the rule of the linear map ``x -> (x - mean(x)) w / sigma``
    with ``sigma`` held constant; on an opaque module ``x * J^T (R / stab(y))``, the module read as a linear map;
    on a product of two signals ``O = A B`` (kind ``matmul``: ``q k^T``, attention times ``V``) the epsilon rule
    with the uniform split of AttnLRP (Achtibat et al. 2024, Prop. 3.3): ``S = R / stab(O)``,
    ``R_A = A * (S B^T) / 2``, ``R_B = B * (A^T S) / 2`` (all to one factor when the other is a constant).
    """

    epsilon: float = 1e-6
    bias: bool = False
    name: ClassVar[str] = "epsilon"
    kinds: ClassVar[frozenset[str]] = WEIGHTED_KINDS | {"norm", "opaque", "matmul"}

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

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ZBox) and self.to_json() == other.to_json()

    def __hash__(self) -> int:
        return hash(repr(self.to_json()))


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


# -- rules of nodes without weights ----------------------------------------------------------------


@dataclass(frozen=True)
class Proportional(Rule):
    """The share of each input in a sum: ``R_i = x_i / stab(sum_i' x_i') R`` (the epsilon rule with unit weights).

    Sums of signals (residual ``+``), sums and means over dimensions, average pooling, and max pooling on
    request (as a sum over each window). ``bias=True``: constants added to the sum join the denominator and
    their share is dropped (LXT's behaviour).
    """

    epsilon: float = STABILIZER
    bias: bool = False
    name: ClassVar[str] = "proportional"
    kinds: ClassVar[frozenset[str]] = frozenset({"sum", "avg_pool", "max_pool"})

    def __post_init__(self) -> None:
        _check_number(self, "epsilon")
        _check_bias(self)


@dataclass(frozen=True)
class Winner(Rule):
    """Max pooling, winner takes all: all of ``R_j`` to the arg-max of window ``j`` (ties: the first)."""

    name: ClassVar[str] = "winner"
    kinds: ClassVar[frozenset[str]] = frozenset({"max_pool"})


@dataclass(frozen=True)
class Uniform(Rule):
    """A product of ``k`` signals, neither a gate: ``R / k`` to each factor (AttnLRP, Achtibat et al. 2024)."""

    name: ClassVar[str] = "uniform"
    kinds: ClassVar[frozenset[str]] = frozenset({"product"})


@dataclass(frozen=True)
class Conservative(Rule):
    """CP-LRP (Ali et al. 2022, "XAI for Transformers: Better Explanations through Conservative Propagation"):
    attention weights and the gate branch of a gated product are held constant.

    On a product of two signals ``O = A V`` (kind ``matmul``) where ``A`` is a softmax's output (through moves):
    ``R_V = V * (A^T S)``, ``S = R / stab(O)``, nothing to ``A`` (so nothing reaches ``q`` and ``k``); on an
    elementwise product ``act(g) * u`` (kind ``product``) where one factor is an activation's output: all of ``R``
    to the other factor. Products without such a factor keep AttnLRP's uniform split.
    """

    epsilon: float = 1e-6
    name: ClassVar[str] = "cp"
    kinds: ClassVar[frozenset[str]] = frozenset({"matmul", "product"})

    def __post_init__(self) -> None:
        _check_number(self, "epsilon")


@dataclass(frozen=True)
class Pass(Rule):
    """The identity: ``R_in = R_out`` (a normalisation treated as a constant affine map, e.g. RMSNorm)."""

    name: ClassVar[str] = "pass"
    kinds: ClassVar[frozenset[str]] = frozenset({"norm", "opaque"})


def _plain(value: Any) -> Any:
    """Numbers stay, arrays and tensors become nested lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return value


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
    "proportional": Proportional,
    "winner": Winner,
    "uniform": Uniform,
    "pass": Pass,
    "cp": Conservative,
}
