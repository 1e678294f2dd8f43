"""One error base for everything lrpkit rejects, with subclasses callers may want to catch."""


class LrpkitError(Exception):
    """Base class of every error lrpkit raises on bad input."""


class SpecError(LrpkitError, ValueError):
    """A layer list, layer parameter, rule or method spec that does not parse or fit."""


class InputError(LrpkitError, ValueError):
    """An input tensor of the wrong shape, dtype or device, or holding NaN/Inf."""


class TargetError(LrpkitError, ValueError):
    """A target class index, class filter or target keyword that does not fit the model."""


class DataError(LrpkitError, ValueError):
    """A data file that is missing, truncated or not in the expected format."""


class ModelFileError(LrpkitError, ValueError):
    """A saved model that is missing, corrupt, foreign or does not match its spec."""


class TrainingError(LrpkitError, ArithmeticError):
    """Training that cannot go on: the loss or the weights became NaN or Inf."""


class OutputError(LrpkitError, OSError):
    """A file or directory lrpkit was asked to write that it cannot or must not write."""


class MissingExtraError(LrpkitError, ImportError):
    """An optional dependency is not installed."""


class StoreError(LrpkitError, ValueError):
    """A dataset store that is missing, foreign, made by another run, or could not be written."""
