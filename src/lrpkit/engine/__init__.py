"""The LRP engine: record a model's forward pass once, then walk relevance back through it.

Imported lazily: ``lrpkit.engine.graph`` (lrpkit's own torch-free graph) never pulls in torch.
"""

from importlib import import_module
from typing import Any

_EXPORTS = {
    **dict.fromkeys(["RelevanceWarning", "conservation_gap", "explain", "graph_of", "layerwise_lrp", "lrp", "totals"], "walk"),
    **dict.fromkeys(["register_module", "register_op"], "extend"),
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrpkit.engine' has no attribute {name!r}")
    return getattr(import_module(f".{module}", __name__), name)
