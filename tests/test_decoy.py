"""Decoy-MNIST: patch values and places, the partial and backdoor variants, determinism."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lrpkit.data import decoy_mnist, mnist

from lrpkit.errors import SpecError
from lrpkit.model.decoy import add_patches, decoy_value

SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture(scope="module")
def full():
    return decoy_mnist()


def test_decoy_value_closed_form():
    assert decoy_value(0).item() == 1.0
    assert decoy_value(9).item() == pytest.approx(30 / 255)


def test_every_training_patch_has_its_labels_gray_value_in_a_corner(full):
    images, labels, mask = full.train.images, full.train.labels, full.train_mask
    assert mask.flatten(1).sum(1).eq(16).all()
    patch_values = images[mask].reshape(-1, 16)
    assert torch.equal(patch_values, decoy_value(labels)[:, None].expand(-1, 16))
    corners = torch.stack([mask[:, 0, 0, 0], mask[:, 0, 0, -1], mask[:, 0, -1, 0], mask[:, 0, -1, -1]], 1)
    assert corners.sum(1).eq(1).all() and corners.sum(0).min() > 800  # each corner used, about a quarter each
    clean = mnist().train.images
    assert torch.equal(images[~mask], clean[~mask])  # nothing else changed


def test_test_patches_carry_a_random_labels_value(full):
    values = full.test.images[full.test_mask].reshape(-1, 16)[:, 0]
    assert torch.equal(values, decoy_value(full.test_decoy))
    assert (full.test_decoy == full.test.labels).float().mean() < 0.2  # independent of the label


def test_partial_variant_patches_a_fraction_of_one_class():
    data = decoy_mnist(poisoned=3, fraction=0.3)
    patched = data.train_patched
    assert torch.equal(data.train.labels[patched].unique(), torch.tensor([3]))
    assert patched.sum() == round(0.3 * (data.train.labels == 3).sum().item())
    assert data.test_mask.flatten(1).any(1).all()


def test_backdoor_variant_relabels_images_of_other_classes():
    data, clean = decoy_mnist(poisoned=3, relabel=True), mnist()
    patched = data.train_patched
    assert (data.train.labels[patched] == 3).all() and (clean.train.labels[patched] != 3).all()
    assert patched.sum() == round(0.3 * (clean.train.labels == 3).sum().item())
    assert "relabelled" in repr(data)


def test_deterministic_for_a_seed():
    a, b, c = decoy_mnist(poisoned=1, seed=5), decoy_mnist(poisoned=1, seed=5), decoy_mnist(poisoned=1, seed=6)
    assert torch.equal(a.train_mask, b.train_mask) and not torch.equal(a.train_mask, c.train_mask)


def test_fixed_corner_puts_every_training_patch_there_and_leaves_the_rest_alone():
    random, fixed = decoy_mnist(poisoned=2, relabel=True), decoy_mnist(poisoned=2, relabel=True, corner=1)
    patched = fixed.train_patched
    assert torch.equal(patched, random.train_patched)  # the same images patched, the same values
    assert fixed.train_mask[patched][:, 0, :4, -4:].all() and fixed.train_mask.flatten(1).sum() == 16 * patched.sum()
    assert torch.equal(fixed.test.images, random.test.images)  # test patches keep their random corners
    assert torch.equal(fixed.train.images[fixed.train_mask], random.train.images[random.train_mask])  # same values
    clean = mnist().train.images
    assert torch.equal(fixed.train.images[~fixed.train_mask], clean[~fixed.train_mask])


def test_add_patches_places_squares():
    images = torch.zeros(4, 1, 6, 6)
    patched, mask = add_patches(images, torch.full((4,), 0.5), torch.tensor([0, 1, 2, 3]), size=2)
    assert patched[0, 0, :2, :2].eq(0.5).all() and patched[1, 0, :2, 4:].eq(0.5).all()
    assert patched[2, 0, 4:, :2].eq(0.5).all() and patched[3, 0, 4:, 4:].eq(0.5).all()
    assert mask.sum() == 16 and patched.sum() == 8


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"poisoned": 10}, "poisoned"),
        ({"poisoned": 1, "fraction": 0}, "fraction"),
        ({"size": 20}, "size"),
        ({"corner": 4}, "corner"),
        ({"corner": True}, "corner"),
    ],
)
def test_bad_options_are_named(options, match):
    with pytest.raises(SpecError, match=match):
        decoy_mnist(**options)


def test_the_decoy_module_imports_on_its_own():
    """``import lrpkit.model.decoy`` first, in a fresh interpreter, is not a circular import."""
    code = "import lrpkit.model.decoy, lrpkit.data; assert lrpkit.data.decoy_mnist is lrpkit.model.decoy.decoy_mnist"
    subprocess.run([sys.executable, "-c", code], check=True, env={**os.environ, "PYTHONPATH": SRC})
