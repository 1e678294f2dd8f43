"""Colour maps, normalisation, grids and PNG files (lrpkit.colormaps, lrpkit.pictures)."""

from __future__ import annotations

import math

import matplotlib as mpl
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import lrpkit
from lrpkit import InputError, SpecError, TargetError
from lrpkit.files import atomic_write
from lrpkit.pictures.colormaps import COLORMAPS, colormap, grid, grid_shape, neutral, normalize
from lrpkit.pictures.grids import as_images, first_layer_filters, png_path, shared_gray, write_png

POINTS = np.array([-1.0, -0.2, 0.0, 0.7, 1.0])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


# -- colour maps at -1, -0.2, 0, 0.7, 1 ----------------------------------------------------------------


def test_heatmap_map_follows_the_issue_formula() -> None:
    # 0 white, full blue from -0.2 down, full red from 0.7 up
    expected = [(0, 0, 1), (0, 0, 1), (1, 1, 1), (1, 0, 0), (1, 0, 0)]
    np.testing.assert_allclose(colormap("heatmap")(POINTS), expected, atol=1e-12)
    # halfway: pink and light blue
    np.testing.assert_allclose(colormap("heatmap")(np.array([0.35, -0.1])), [(1, 0.5, 0.5), (0.5, 0.5, 1)])


def _tutorial_clip_formula(x: np.ndarray) -> np.ndarray:
    """The heatmapping.org tutorial's map, written with its clip expressions (independent of the stops)."""
    c = np.clip
    rp = 0.9 - c(x - 0.3, 0, 0.7) / 0.7 * 0.5
    gp = 0.9 - c(x, 0, 0.3) / 0.3 * 0.5 - c(x - 0.3, 0, 0.7) / 0.7 * 0.4
    rn = 0.9 - c(-x, 0, 0.3) / 0.3 * 0.5 - c(-x - 0.3, 0, 0.7) / 0.7 * 0.4
    bn = 0.9 - c(-x - 0.3, 0, 0.7) / 0.7 * 0.5
    positive = x >= 0
    return np.stack([np.where(positive, rp, rn), np.where(positive, gp, rn), np.where(positive, gp, bn)], axis=-1)


def test_tutorial_map_matches_the_tutorial_formula() -> None:
    values = np.concatenate([POINTS, np.linspace(-1, 1, 201)])
    np.testing.assert_allclose(colormap("tutorial")(values), _tutorial_clip_formula(values), atol=1e-12)
    np.testing.assert_allclose(colormap("tutorial")(POINTS[[0, 2, 4]]), [(0, 0, 0.4), (0.9, 0.9, 0.9), (0.4, 0, 0)])


@pytest.mark.parametrize("name", ["bwr", "seismic"])
def test_bwr_and_seismic_match_matplotlib(name: str) -> None:
    values = np.concatenate([POINTS, np.linspace(-1, 1, 41)])
    theirs = mpl.colormaps[name]((values + 1) / 2)[:, :3]  # a 256-entry lookup table: one step ~ 0.016
    np.testing.assert_allclose(colormap(name)(values), theirs, atol=0.02)


def test_coldnhot_is_cold_below_black_at_zero_hot_above() -> None:
    expected = [(0, 1, 1), (0, 0, 0.4), (0, 0, 0), (1, 0.4, 0), (1, 1, 0)]
    np.testing.assert_allclose(colormap("coldnhot")(POINTS), expected, atol=1e-12)
    values = np.linspace(-1, 1, 101)
    rgb = colormap("coldnhot")(values)
    assert np.all(rgb[values < 0, 0] == 0) and np.all(rgb[values > 0, 2] == 0)
    brightness = rgb.sum(axis=-1)
    assert np.all(np.diff(brightness[values >= 0]) >= 0) and np.all(np.diff(brightness[values <= 0]) <= 0)


def test_gray_is_half_plus_half() -> None:
    np.testing.assert_allclose(colormap("gray")(POINTS), np.repeat((POINTS * 0.5 + 0.5)[:, None], 3, axis=1))


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_every_map_is_rgb_in_unit_range_and_clips(name: str) -> None:
    values = np.linspace(-3, 3, 121).reshape(11, 11)
    rgb = colormap(name)(values)
    assert rgb.shape == (11, 11, 3) and rgb.min() >= 0 and rgb.max() <= 1
    np.testing.assert_allclose(colormap(name)(np.array([-3.0, 3.0])), colormap(name)(np.array([-1.0, 1.0])))


def test_unknown_colormap_lists_the_known_ones() -> None:
    with pytest.raises(SpecError, match="coldnhot"):
        lrpkit.heatmap(np.ones((2, 2)), cmap="jet")


# -- normalisation --------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.floats(1e-3, 1e3))
def test_symmetric_normalisation_is_scale_invariant_and_reaches_one(seed: int, scale: float) -> None:
    relevance = np.random.default_rng(seed).normal(size=(3, 1, 5, 6))
    values = normalize(relevance.sum(axis=1))
    np.testing.assert_allclose(np.abs(values).max(axis=(-2, -1)), 1.0)
    np.testing.assert_allclose(values, normalize(scale * relevance.sum(axis=1)), atol=1e-12)
    np.testing.assert_allclose(lrpkit.heatmap(relevance), lrpkit.heatmap(scale * relevance), atol=1e-12)
    assert np.all(np.sign(values) == np.sign(relevance.sum(axis=1)))


def test_bwr_flips_red_and_blue_with_the_sign(rng: np.random.Generator) -> None:
    relevance = rng.normal(size=(2, 1, 4, 4))
    np.testing.assert_allclose(lrpkit.heatmap(-relevance, "bwr"), lrpkit.heatmap(relevance, "bwr")[..., ::-1])


def test_batch_normalisation_shares_one_scale(rng: np.random.Generator) -> None:
    big = np.abs(rng.normal(size=(1, 6, 6))) + 0.1
    relevance = np.stack([big, 0.1 * big])  # (2, 1, 6, 6): the second image is 10x weaker
    per_sample = normalize(relevance[:, 0], per="sample")
    per_batch = normalize(relevance[:, 0], per="batch")
    np.testing.assert_allclose(per_sample[0], per_sample[1])
    np.testing.assert_allclose(per_batch[1], 0.1 * per_batch[0])
    np.testing.assert_allclose(per_batch.max(), 1.0)


def test_no_normalisation_clips() -> None:
    np.testing.assert_allclose(normalize(np.array([[-5.0, 0.25, 2.0]]), per="none"), [[-1.0, 0.25, 1.0]])
    with pytest.raises(SpecError, match="sample, batch, none"):
        normalize(np.ones((2, 2)), per="image")


@pytest.mark.parametrize("name", list(COLORMAPS))
def test_all_zero_relevance_is_a_neutral_image_never_nan(name: str) -> None:
    for normalize_mode in ("sample", "batch"):
        for symmetric in (True, False):
            rgb = lrpkit.heatmap(np.zeros((2, 1, 5, 5)), name, symmetric=symmetric, normalize=normalize_mode)
            assert np.isfinite(rgb).all()
            np.testing.assert_allclose(rgb, np.broadcast_to(neutral(name), rgb.shape))


def test_neutral_colours_are_as_documented() -> None:
    np.testing.assert_allclose(neutral("heatmap"), (1, 1, 1))
    np.testing.assert_allclose(neutral("tutorial"), (0.9, 0.9, 0.9))
    np.testing.assert_allclose(neutral("coldnhot"), (0, 0, 0))
    np.testing.assert_allclose(neutral("gray"), (0.5, 0.5, 0.5))


def test_gray_spans_min_to_max_by_default() -> None:
    image = np.array([[0.0, 0.25], [0.5, 1.0]]) * 0.6 + 0.2  # inputs in [0.2, 0.8]
    np.testing.assert_allclose(lrpkit.heatmap(image, "gray")[..., 0], [[0.0, 0.25], [0.5, 1.0]], atol=1e-12)


def test_nan_and_bad_shapes_are_input_errors() -> None:
    with pytest.raises(InputError, match="NaN"):
        lrpkit.heatmap(np.array([[0.0, np.nan]]))
    with pytest.raises(InputError, match=r"expected an image \(H, W\)"):
        lrpkit.heatmap(np.ones(5))
    with pytest.raises(InputError, match="NumPy array or torch tensor"):
        lrpkit.heatmap("not an array")


# -- channels, tensors, overlay ---------------------------------------------------------------------


def test_channels_are_summed(rng: np.random.Generator) -> None:
    relevance = rng.normal(size=(4, 3, 5, 5))
    np.testing.assert_allclose(lrpkit.heatmap(relevance), lrpkit.heatmap(relevance.sum(axis=1, keepdims=True)))
    assert lrpkit.heatmap(relevance[0]).shape == (5, 5, 3)  # (C, H, W) is one image
    assert lrpkit.heatmap(relevance).shape == (4, 5, 5, 3)


def test_torch_tensors_are_accepted(rng: np.random.Generator) -> None:
    relevance = rng.normal(size=(2, 1, 4, 4))
    tensor = torch.tensor(relevance, dtype=torch.float32, requires_grad=True)
    np.testing.assert_allclose(lrpkit.heatmap(tensor), lrpkit.heatmap(relevance.astype(np.float32)), atol=1e-12)


def test_overlay_blends_gray_input_and_heatmap(rng: np.random.Generator) -> None:
    relevance, image = rng.normal(size=(2, 1, 6, 6)), rng.uniform(size=(2, 1, 6, 6))
    plain = lrpkit.heatmap(relevance)
    under = lrpkit.heatmap(image, "gray")
    np.testing.assert_allclose(lrpkit.heatmap(relevance, overlay=image, alpha=1.0), plain)
    np.testing.assert_allclose(lrpkit.heatmap(relevance, overlay=image, alpha=0.0), under)
    np.testing.assert_allclose(lrpkit.heatmap(relevance, overlay=image, alpha=0.3), 0.7 * under + 0.3 * plain)
    with pytest.raises(InputError, match="overlay"):
        lrpkit.heatmap(relevance, overlay=np.ones((2, 1, 5, 5)))
    with pytest.raises(SpecError, match="alpha"):
        lrpkit.heatmap(relevance, overlay=image, alpha=2.0)


# -- grids ----------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 40), st.one_of(st.none(), st.integers(1, 12)), st.integers(0, 3))
def test_grid_has_room_for_every_image(count: int, ncols: int | None, pad: int) -> None:
    rows, cols = grid_shape(count, ncols)
    assert rows * cols >= count > (rows - 1) * cols and cols <= count
    if ncols is None:
        assert cols == math.ceil(math.sqrt(count))
    images = np.random.default_rng(count).uniform(size=(count, 3, 2, 3)) * 0.5  # never the white fill
    canvas = grid(images, ncols, pad)
    assert canvas.shape == (rows * 3 + (rows - 1) * pad, cols * 2 + (cols - 1) * pad, 3)
    for k in range(count):  # every image lands in its own cell, in row-major order
        top, left = (k // cols) * (3 + pad), (k % cols) * (2 + pad)
        np.testing.assert_array_equal(canvas[top : top + 3, left : left + 2], images[k])
    assert np.count_nonzero(canvas == 1.0) == canvas.size - images.size


def test_odd_counts_leave_fill_in_the_last_row() -> None:
    canvas = grid(np.zeros((7, 2, 2, 3)), pad=0, fill=(1.0, 0.0, 0.5))
    assert canvas.shape == (6, 6, 3)  # 3 x 3 cells for 7 images
    np.testing.assert_array_equal(canvas[4:, 2:], np.broadcast_to([1.0, 0.0, 0.5], (2, 4, 3)))
    np.testing.assert_array_equal(canvas[4:, :2], 0.0)


def test_bad_grid_arguments() -> None:
    with pytest.raises(InputError, match="0 images"):
        grid_shape(0)
    with pytest.raises(SpecError, match="ncols"):
        grid_shape(4, ncols=0)
    with pytest.raises(InputError, match=r"\(N, H, W, 3\)"):
        grid(np.zeros((2, 3, 3)))


# -- files ------------------------------------------------------------------------------------------


def test_png_path_never_doubles_the_suffix(tmp_path) -> None:
    assert png_path(tmp_path / "x.png") == tmp_path / "x.png"
    assert png_path(tmp_path / "x.PNG") == tmp_path / "x.PNG"
    assert png_path(tmp_path / "x") == tmp_path / "x.png"
    assert png_path("out/x.v1") == png_path("out/x.v1.png")


def test_png_roundtrip_is_exact_and_leaves_no_temporary_files(tmp_path, rng: np.random.Generator) -> None:
    rgb = rng.uniform(size=(5, 7, 3))
    path = write_png(rgb, tmp_path / "sub" / "image")
    assert path == tmp_path / "sub" / "image.png"
    with Image.open(path) as image:
        assert image.format == "PNG" and image.mode == "RGB"
        pixels = np.asarray(image)
    np.testing.assert_array_equal(pixels, np.round(rgb * 255).astype(np.uint8))
    assert [p.name for p in path.parent.iterdir()] == ["image.png"]


def test_a_failed_write_keeps_the_old_file(tmp_path) -> None:
    target = tmp_path / "keep.png"
    target.write_bytes(b"old")

    def fail(file) -> None:
        file.write(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.png"]


def _read(path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image).astype(np.float64) / 255


def test_visualize_writes_a_grid_of_any_count(tmp_path, rng: np.random.Generator) -> None:
    relevance = rng.normal(size=(17, 1, 6, 5))
    path = lrpkit.visualize(relevance, "bwr", tmp_path / "r.png", zoom=2, pad=1, fill=0.7)
    pixels = _read(path)
    assert path.name == "r.png" and pixels.shape == (4 * 12 + 3, 5 * 10 + 4, 3)  # 17 -> 4 rows of 5
    expected = grid(lrpkit.heatmap(relevance, "bwr").repeat(2, axis=1).repeat(2, axis=2), None, 1, fill=0.7)
    np.testing.assert_allclose(pixels, expected, atol=0.5 / 255 + 1e-9)


def test_visualize_accepts_flat_vectors_tensors_and_colour_functions(tmp_path, rng: np.random.Generator) -> None:
    flat = rng.normal(size=(3, 784))
    by_name = _read(lrpkit.visualize(flat, "heatmap", tmp_path / "a.png"))
    by_function = _read(lrpkit.visualize(torch.tensor(flat), lrpkit.heatmap, tmp_path / "b.png"))
    np.testing.assert_array_equal(by_name, by_function)
    assert by_name.shape == (28 * 2 + 1, 28 * 2 + 1, 3)
    with pytest.raises(InputError, match="x\\[None\\]"):
        lrpkit.visualize(np.ones((28, 28)), "gray", tmp_path / "c.png")


def test_visualize_lays_every_class_in_one_row_per_sample(tmp_path, rng: np.random.Generator) -> None:
    relevance = rng.normal(size=(3, 10, 1, 4, 4))  # what target="all" returns
    pixels = _read(lrpkit.visualize(relevance, "heatmap", tmp_path / "all.png", pad=0))
    assert pixels.shape == (3 * 4, 10 * 4, 3)
    np.testing.assert_allclose(pixels[4:8, 8:12], lrpkit.heatmap(relevance[1, 2]), atol=0.5 / 255 + 1e-9)


# -- first-layer filters ----------------------------------------------------------------------------


def test_conv_filters_are_averaged_over_input_channels() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 5), torch.nn.ReLU(), torch.nn.Flatten())
    filters = first_layer_filters(model)
    np.testing.assert_allclose(filters, model[0].weight.detach().double().mean(dim=1).numpy())


def test_linear_filters_are_the_units_weights_as_images() -> None:
    net = lrpkit.Network([lrpkit.Linear(10)], input_shape=(1, 12, 12), seed=1)
    filters = first_layer_filters(net)
    weight = net.body[1].weight.detach().double().numpy()
    assert filters.shape == (10, 12, 12)
    np.testing.assert_allclose(filters[3, 5], weight[3, 5 * 12 : 6 * 12])  # row 5 of unit 3
    odd = torch.nn.Sequential(torch.nn.Linear(10, 2))
    with pytest.raises(SpecError, match="10 inputs"):
        first_layer_filters(odd)
    with pytest.raises(SpecError, match="no Linear or Conv2d"):
        first_layer_filters(torch.nn.Sequential(torch.nn.ReLU()))


def test_filters_share_one_gray_scale(tmp_path, rng: np.random.Generator) -> None:
    filters = rng.normal(size=(6, 5, 5))
    filters[2] *= 10  # one strong filter: the others must look faint on the shared scale
    levels = shared_gray(filters)[..., 0]
    assert levels.min() == 0 and levels.max() == 1
    assert levels[2].max() == 1 or levels[2].min() == 0
    np.testing.assert_allclose(np.diff(levels.ravel()[np.argsort(filters.ravel())]) >= 0, True)
    np.testing.assert_allclose(shared_gray(np.zeros((2, 3, 3))), 0.5)

    model = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5))
    path = lrpkit.plot_filters(model, tmp_path / "filters", zoom=2)
    pixels = _read(path)
    assert path.name == "filters.png" and pixels.shape == (2 * 10 + 2, 3 * 10 + 4, 3)  # 6 -> 2 x 3 cells
    expected = shared_gray(first_layer_filters(model))[0].repeat(2, axis=0).repeat(2, axis=1)
    np.testing.assert_allclose(pixels[:10, :10], expected, atol=0.5 / 255 + 1e-9)


def test_as_images_layouts(rng: np.random.Generator) -> None:
    assert as_images(rng.normal(size=(2, 784))).shape == (2, 1, 28, 28)
    assert as_images(rng.normal(size=(2, 5, 6))).shape == (2, 1, 5, 6)
    assert as_images(rng.normal(size=(2, 3, 5, 6))).shape == (2, 3, 5, 6)
    with pytest.raises(InputError, match="square number"):
        as_images(rng.normal(size=(2, 10)))


def test_labels_must_fit_the_classes() -> None:
    from lrpkit.pictures.grids import check_labels

    np.testing.assert_array_equal(check_labels([1, 2], 2, 10), [1, 2])
    with pytest.raises(TargetError, match=r"0\.\.9"):
        check_labels([1, 10], 2, 10)
    with pytest.raises(TargetError, match="2 class ids"):
        check_labels([1], 2, 10)
