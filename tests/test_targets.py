"""Targets: every accepted form becomes the right starting relevance; every bad one a clear TargetError."""

import numpy as np
import pytest
import torch
from torch import nn

import lrpkit
from lrpkit.engine.targets import class_filter, start_relevance
from lrpkit.errors import LrpkitError, TargetError

LOGITS = torch.tensor([[1.0, -2.0, 3.0], [-4.0, 5.0, 0.5]], dtype=torch.float64)


def expected_top(filt):
    return LOGITS * torch.as_tensor(filt, dtype=torch.float64)


@pytest.mark.parametrize(
    ("target", "filt"),
    [
        (2, [[0, 0, 1], [0, 0, 1]]),
        (np.int64(1), [[0, 1, 0], [0, 1, 0]]),
        ([0, 2], [[1, 0, 0], [0, 0, 1]]),
        ((1, 1), [[0, 1, 0], [0, 1, 0]]),
        (torch.tensor([2, 0]), [[0, 0, 1], [1, 0, 0]]),
        (np.array([1, 2], dtype=np.int32), [[0, 1, 0], [0, 0, 1]]),
        ("pred", [[0, 0, 1], [0, 1, 0]]),
        ([0.5, 0.0, -1.0], [[0.5, 0, -1], [0.5, 0, -1]]),
        (torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 2.0]]), [[1, 1, 0], [0, 0, 2]]),
        (None, [[0, 0, 0], [0, 0, 0]]),
        (np.zeros(3), [[0, 0, 0], [0, 0, 0]]),
    ],
)
def test_single_targets_start_from_logits_times_filter(target, filt):
    R, every = start_relevance(LOGITS, target)
    assert not every and R.shape[0] == 1 and R.dtype == LOGITS.dtype
    torch.testing.assert_close(R[0].expand(2, 3), expected_top(filt))


def test_all_stacks_one_target_per_class():
    R, every = start_relevance(LOGITS, "all")
    assert every and R.shape == (3, 2, 3)
    for c in range(3):
        single, _ = start_relevance(LOGITS, c)
        torch.testing.assert_close(R[c], single[0])


def test_rectified_presets_start_from_relu_logits():
    R, _ = start_relevance(LOGITS, [1, 1], rectify=True)
    torch.testing.assert_close(R[0], torch.tensor([[0.0, 0.0, 0.0], [0.0, 5.0, 0.0]], dtype=torch.float64))


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (3, r"class id 3 is out of range: the model has 3 classes \(0..2\)"),
        (-1, "class id -1 is out of range"),
        ([0, 5], "class id 5 is out of range"),
        ([0, 1, 2], r"one per sample, shape \(2,\); got shape \(3,\)"),
        (torch.zeros(2, 2, dtype=torch.long), r"got shape \(2, 2\)"),
        ([1.0, 0.0], r"filter must have shape \(3,\) or \(2, 3\), got \(2,\)"),
        (torch.ones(3, 2), r"got \(3, 2\)"),
        ([float("nan"), 0.0, 1.0], "NaN or Inf"),
        (True, "must not be a bool"),
        (torch.tensor([True, False]), "dtype torch.bool"),
        ("best", "unknown target 'best'; keywords: 'pred', 'all'"),
        ("ALL", "unknown target"),
        (object(), "cannot read target"),
        ([[0, 1], [2]], "cannot read target"),
    ],
)
def test_bad_targets_name_the_problem(target, message):
    with pytest.raises(TargetError, match=message):
        class_filter(target, LOGITS)


def test_bad_targets_through_the_public_api():
    net = lrpkit.mlp()
    x = torch.rand(2, 784)
    with pytest.raises(TargetError, match="out of range"):
        net.lrp(x, [0, 10])
    with pytest.raises(LrpkitError, match="filter"):
        lrpkit.lrp(net, x, torch.ones(5))


def test_zero_filter_and_none_give_zero_relevance_everywhere():
    net = lrpkit.cnn().double()
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64)
    for target in (None, torch.zeros(10, dtype=torch.float64)):
        for R in net.layerwise_lrp(x, target, "zbab"):
            assert not R.any()


def test_labels_on_another_device_or_dtype_are_accepted():
    model = nn.Sequential(nn.Linear(4, 3)).double()
    x = torch.rand(2, 4, dtype=torch.float64)
    by_ids = lrpkit.lrp(model, x, torch.tensor([2, 0], dtype=torch.int32))
    by_filter = lrpkit.lrp(model, x, torch.tensor([[0, 0, 1], [1, 0, 0]], dtype=torch.float32))
    torch.testing.assert_close(by_ids, by_filter)
