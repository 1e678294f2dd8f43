import sys

import numpy as np
import pytest

from lrpkit import checks
from lrpkit.errors import DataError, SpecError


def test_integers_accept_numpy_and_refuse_bools_floats_and_ranges():
    assert checks.integer(np.int64(3), "k") == 3 and type(checks.integer(np.int64(3), "k")) is int
    assert checks.positive_int(7, "steps") == 7
    for bad in (True, 2.0, "3", None, 0, -1):
        with pytest.raises(SpecError, match=rf"steps must be a positive integer, got {bad!r}"):
            checks.positive_int(bad, "steps")
    with pytest.raises(SpecError, match=r"n must be an integer in 1\.\.5, got 6"):
        checks.integer(6, "n", minimum=1, maximum=5)
    with pytest.raises(DataError, match="pad must be an integer >= 0"):
        checks.integer(-1, "pad", minimum=0, error=DataError)


def test_seeds_fit_a_64_bit_generator():
    assert checks.seed(2**63 - 1) == 2**63 - 1
    for bad in (2**63, -1, 10**30):
        with pytest.raises(SpecError, match=r"seed must be an integer in 0\.\.9223372036854775807"):
            checks.seed(bad)


def test_numbers_are_finite_and_within_bounds():
    assert checks.number(np.float32(0.5), "p", minimum=0, below=1) == 0.5
    assert checks.number(3, "lr", above=0) == 3.0
    for bad in (float("nan"), float("inf"), "0.1", True, None, [1]):
        with pytest.raises(SpecError, match="lr must be a finite number"):
            checks.number(bad, "lr")
    with pytest.raises(SpecError, match=r"lr must be a finite number > 0, got -1"):
        checks.number(-1, "lr", above=0)
    with pytest.raises(SpecError, match=r"p must be a finite number >= 0 and < 1, got 1"):
        checks.number(1, "p", minimum=0, below=1)


def test_flags_choices_and_mappings():
    assert checks.flag(False, "bias") is False
    with pytest.raises(SpecError, match="bias must be True or False, got 1"):
        checks.flag(1, "bias")
    assert checks.choice("morf", "order", ("morf", "lerf")) == "morf"
    with pytest.raises(SpecError, match="order must be one of morf, lerf; got 'up'"):
        checks.choice("up", "order", ("morf", "lerf"))
    assert checks.mapping({"a": 1}, "metadata") == {"a": 1}
    with pytest.raises(SpecError, match="metadata must be a mapping .* got list"):
        checks.mapping([1, 2], "metadata")


def test_checks_import_no_torch():
    import subprocess

    code = "import lrpkit.checks, sys; print('torch' in sys.modules, 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", "False"]
