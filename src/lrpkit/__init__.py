"""lrpkit: train MLPs and CNNs and explain their decisions with Layer-wise Relevance Propagation."""

from . import layers
from .errors import DataError, InputError, LrpkitError, MissingExtraError, ModelFileError, SpecError, TargetError
from .layers import (
    AvgPool,
    Conv,
    Dropout,
    FirstConvolution,
    FirstConvolutional,
    FirstLinear,
    Flatten,
    Format,
    Linear,
    MaxPool,
    NextConvolution,
    NextConvolutional,
    NextLinear,
    NoFormat,
    Pad,
    ReLU,
    SumPool,
)
from .network import ARCHITECTURES, Network, cnn, mlp, tutorial_cnn, tutorial_mlp

__version__ = "0.1.0"


def load(path: str) -> Network:
    """Loads a model directory written by ``Network.save``."""
    from .io import load as _load

    return _load(path)


__all__ = [
    "ARCHITECTURES",
    "AvgPool",
    "Conv",
    "DataError",
    "Dropout",
    "FirstConvolution",
    "FirstConvolutional",
    "FirstLinear",
    "Flatten",
    "Format",
    "InputError",
    "Linear",
    "LrpkitError",
    "MaxPool",
    "MissingExtraError",
    "ModelFileError",
    "Network",
    "NextConvolution",
    "NextConvolutional",
    "NextLinear",
    "NoFormat",
    "Pad",
    "ReLU",
    "SpecError",
    "SumPool",
    "TargetError",
    "cnn",
    "layers",
    "load",
    "mlp",
    "tutorial_cnn",
    "tutorial_mlp",
]
