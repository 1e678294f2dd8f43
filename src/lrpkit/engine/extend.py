"""Extending the engine: rules for ops it does not know, and submodules explained as one opaque node.

- :func:`register_op` gives an op (an ATen op lrpkit has no rule for, or your own ``torch.library`` op) a
  relevance step; it then works wherever the op appears.
- :func:`register_module` makes every instance of a module class one opaque node (your own layer, whatever
  its forward does inside); ``opaque=["path.to.module"]`` in a call does it for single submodules. An opaque
  node's rule is chosen like any other (composite kind ``"opaque"``, or its module path): ``Epsilon`` (the
  default) gives ``x * J^T (R / stab(y))`` -- the epsilon rule of the module read as a linear map around
  ``x``, exact for modules that are linear in ``x`` --, ``Pass`` the identity (same shape in and out).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from torch import Tensor, nn

from ..errors import SpecError

Relevance = Callable[[Any], Sequence[Tensor | None]]
OPS: dict[Any, Relevance] = {}
MODULES: set[type[nn.Module]] = set()


def register_op(op: Any, relevance: Relevance) -> None:
    """Explains ``op`` (e.g. ``torch.ops.mylib.fancy.default``) with ``relevance(step)``: ``step.R`` is the
    relevance at the op's output with a leading target dimension ``(K, *output.shape)``, ``step.inputs`` its
    inputs' values, ``step.output`` its value; return one relevance ``(K, *input.shape)`` (or None) per input."""
    if not callable(relevance):
        raise SpecError(f"register_op needs a relevance function, got {relevance!r}")
    OPS[op] = relevance


def register_module(cls: type[nn.Module]) -> None:
    """Explains every instance of ``cls`` as one opaque node (see the module docstring)."""
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise SpecError(f"register_module needs a torch.nn.Module subclass, got {cls!r}")
    MODULES.add(cls)


def opaque_paths(model: nn.Module, extra: Iterable[str] = ()) -> tuple[str, ...]:
    """The module paths to explain as opaque nodes: registered classes and ``extra``, outermost only."""
    extra = tuple(extra)
    if not extra and not MODULES:
        return ()  # nothing registered, nothing asked for: no walk over the modules
    modules = dict(model.named_modules())
    for path in extra:
        if path not in modules or not path:
            names = ", ".join(list(modules)[1:13])
            raise SpecError(f"opaque={path!r} is not a submodule of the model (some are: {names})")
    found = [name for name, m in modules.items() if name and isinstance(m, tuple(MODULES))] + list(extra)
    return tuple(sorted(p for p in set(found) if not any(p.startswith(q + ".") for q in found)))
