"""lrpkit: train MLPs and CNNs and explain their decisions with Layer-wise Relevance Propagation.

Names are imported lazily (PEP 562), so ``import lrpkit.reference`` stays free of torch.
"""

from importlib import import_module
from typing import Any

from .errors import (  # noqa: F401 (re-exported)
    DataError,
    InputError,
    LrpkitError,
    MissingExtraError,
    ModelFileError,
    SpecError,
    TargetError,
)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    **dict.fromkeys(
        [
            "AvgPool",
            "Conv",
            "Dropout",
            "FirstConvolution",
            "FirstConvolutional",
            "FirstLinear",
            "Flatten",
            "Format",
            "Linear",
            "MaxPool",
            "NextConvolution",
            "NextConvolutional",
            "NextLinear",
            "NoFormat",
            "Pad",
            "ReLU",
            "SumPool",
        ],
        "layers",
    ),
    **dict.fromkeys(["ARCHITECTURES", "Network", "cnn", "mlp", "tutorial_cnn", "tutorial_mlp"], "network"),
    **dict.fromkeys(
        ["AlphaBeta", "Epsilon", "Flat", "Gamma", "PRESETS", "RULES", "Rule", "Simple", "WSquare", "ZBox", "ZPlus"],
        "methods",
    ),
    "load": "io",
    "mnist": "data",
    **dict.fromkeys(["layerwise_lrp", "lrp"], "lrp"),
    **dict.fromkeys(["PixelFlippingResult", "aopc", "conservation", "pixel_flipping"], "evaluate"),
    **dict.fromkeys(["BASELINES", "attribute"], "attribution"),
    "heatmap": "colormaps",
    **dict.fromkeys(["export_tutorial", "load_tutorial"], "tutorial_format"),
    **dict.fromkeys(["MismatchError", "ReferenceNetwork"], "reference"),
    **dict.fromkeys(["plot_classes", "plot_filters", "visualize"], "pictures"),
}

_ERRORS = ["DataError", "InputError", "LrpkitError", "MissingExtraError", "ModelFileError", "SpecError", "TargetError"]
__all__ = sorted([*_EXPORTS, *_ERRORS, "__version__"])


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'lrpkit' has no attribute {name!r}")
    value = getattr(import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
