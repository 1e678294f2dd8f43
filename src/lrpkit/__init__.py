"""lrpkit: train networks and explain their decisions with Layer-wise Relevance Propagation.

Names and submodules are imported lazily (PEP 562), so ``import lrpkit`` is cheap and ``import
lrpkit.reference`` stays free of torch. The layers, each importing only from those above it in this list:
``errors``/``checks``/``files``/``progress``/``lazy``; ``rules``/``composites``; ``engine``; ``reference``; ``model``;
``attribution``/``evaluate``; ``pictures``; ``jobs``/``analysis``; ``cli``.
"""

from __future__ import annotations

import importlib.abc
import importlib.util
import sys
from importlib import import_module
from typing import Any

from .errors import (  # noqa: F401 (re-exported)
    DataError,
    InputError,
    LrpkitError,
    MissingExtraError,
    ModelFileError,
    OutputError,
    SpecError,
    StoreError,
    TargetError,
    TrainingError,
)
from .lazy import exports

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    **dict.fromkeys(
        [
            "AvgPool",
            "BatchNorm",
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
            "Residual",
            "SumPool",
        ],
        "model.layers",
    ),
    **dict.fromkeys(
        ["ARCHITECTURES", "Network", "cnn", "mlp", "resnet", "tutorial_cnn", "tutorial_mlp", "vit"], "model.network"
    ),
    **dict.fromkeys(
        [
            "AlphaBeta",
            "Conservative",
            "Epsilon",
            "Flat",
            "Gamma",
            "Pass",
            "Proportional",
            "RULES",
            "Rule",
            "Simple",
            "Uniform",
            "WSquare",
            "Winner",
            "ZBox",
            "ZPlus",
        ],
        "rules",
    ),
    **dict.fromkeys(["Composite", "PRESETS"], "composites"),
    "load": "model.io",
    "mnist": "model.data",
    **dict.fromkeys(["RelevanceWarning", "layerwise_lrp", "lrp", "register_module", "register_op"], "engine"),
    "Logit": "engine.targets",
    **dict.fromkeys(["PixelFlippingResult", "aopc", "conservation", "pixel_flipping"], "evaluate"),
    **dict.fromkeys(["BASELINES", "attribute"], "attribution"),
    "heatmap": "pictures.colormaps",
    **dict.fromkeys(["explain_dataset", "open_store"], "jobs"),
    "spray": "analysis.spray",
    **dict.fromkeys(["export_tutorial", "load_tutorial"], "model.tutorial"),
    **dict.fromkeys(["ClassToken", "Encoder", "Tokens"], "model.transformer"),
    **dict.fromkeys(["MismatchError", "ReferenceNetwork"], "reference"),
    **dict.fromkeys(["plot_classes", "plot_filters", "visualize", "write_tokens_html", "write_tokens_png"], "pictures"),
}

_SUBMODULES = {
    name: name
    for name in [
        "analysis",
        "attribution",
        "checks",
        "cli",
        "composites",
        "engine",
        "evaluate",
        "files",
        "jobs",
        "model",
        "pictures",
        "progress",
        "reference",
        "rules",
    ]
}
_ALIASES = {
    "data": "model.data",
    "io": "model.io",
    "layers": "model.layers",
    "network": "model.network",
    "train": "model.train",
    "tutorial_format": "model.tutorial",
    "colormaps": "pictures.colormaps",
}
"""Short names kept from before the package was split into layers: ``lrpkit.data`` is ``lrpkit.model.data``."""

_ERRORS = [
    "DataError",
    "InputError",
    "LrpkitError",
    "MissingExtraError",
    "ModelFileError",
    "OutputError",
    "SpecError",
    "StoreError",
    "TargetError",
    "TrainingError",
]
__all__ = sorted([*_EXPORTS, *_ERRORS, "__version__"])


_exported = exports(__name__, _EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES or name in _ALIASES:
        return import_module(f"{__name__}.{_ALIASES.get(name, name)}")
    value = globals()[name] = _exported(name)
    return value


def __dir__() -> list[str]:
    return sorted([*__all__, *_SUBMODULES, *_ALIASES])


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import lrpkit.data`` (and the other short names) import the module it stands for."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        package, _, short = fullname.rpartition(".")
        if package != __name__ or short not in _ALIASES:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec: Any) -> Any:
        module = import_module(f"{__name__}.{_ALIASES[spec.name.rpartition('.')[2]]}")
        spec.loader_state = module.__spec__  # the import system gives the module the alias's spec: undone below
        return module

    def exec_module(self, module: Any) -> None:
        module.__spec__ = module.__spec__.loader_state


if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
    sys.meta_path.append(_AliasFinder())
