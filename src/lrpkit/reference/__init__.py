"""A second, deliberately plain implementation of lrpkit's networks and LRP rules, in pure NumPy.

Readable as a tutorial (each rule is four numbered steps in :mod:`lrpkit.reference.rules`, each layer a small
class in :mod:`lrpkit.reference.layers`) and used to test the PyTorch engine layer by layer. Importing it
never imports torch.

>>> twin = net.to_numpy()                      # or ReferenceNetwork.from_spec(spec, numpy_weights)
>>> R = twin.lrp(x_numpy, target=3, method="deeptaylor")
>>> net.test(x)                                # every layer's output, torch vs NumPy
>>> check_model(model, x, "epsilon")           # any model: the relevance at every graph node
"""

from .bridge import check_model, check_network, deeptaylor, from_model, from_network, to_array
from .compare import LayerCheck, MismatchError, Report, compare
from .interpreter import ReferenceGraph
from .network import ReferenceNetwork, unknown_layers
from .rules import stab
from .targets import class_filter

__all__ = [
    "LayerCheck",
    "MismatchError",
    "ReferenceGraph",
    "ReferenceNetwork",
    "Report",
    "check_model",
    "check_network",
    "class_filter",
    "compare",
    "deeptaylor",
    "from_model",
    "from_network",
    "stab",
    "to_array",
    "unknown_layers",
]
