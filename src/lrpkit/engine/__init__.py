"""The LRP engine: record a model's forward pass once, then walk relevance back through it.

Imported lazily: ``lrpkit.engine.graph`` (lrpkit's own torch-free graph) never pulls in torch.
"""

from ..lazy import exports

_EXPORTS = {
    **dict.fromkeys(
        [
            "RelevanceWarning",
            "conservation_gap",
            "explain",
            "graph_of",
            "layerwise_lrp",
            "lrp",
            "node_values",
            "nodewise_lrp",
            "totals",
        ],
        "walk",
    ),
    **dict.fromkeys(["register_module", "register_op"], "extend"),
}
__all__ = sorted(_EXPORTS)

__getattr__ = exports(__name__, _EXPORTS)
