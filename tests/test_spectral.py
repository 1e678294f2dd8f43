"""SpRAy's steps against closed forms: normalisation, the k-NN graph, the spectrum, the eigengap, k-means."""

import sys

import numpy as np
import pytest
import threadpoolctl
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.sparse.csgraph import connected_components

from lrpkit.analysis import spectral
from lrpkit.errors import InputError, MissingExtraError, SpecError


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: torch's and scikit-learn's OpenMP runtimes fight over 2 busy cores otherwise."""
    with threadpoolctl.threadpool_limits(1):
        yield


def blobs(rng, sizes, dim=20, spread=0.05, distance=10.0):
    """Well-separated Gaussian blobs: centres ``distance`` apart along the axes."""
    points = [distance * np.eye(dim)[i] + spread * rng.standard_normal((n, dim)) for i, n in enumerate(sizes)]
    return np.concatenate(points), np.repeat(np.arange(len(sizes)), sizes)


# -- features -----------------------------------------------------------------------------------------


def test_features_sum_channels_and_divide_by_absolute_sum(rng):
    r = rng.standard_normal((5, 3, 4, 4))
    x = spectral.features(r)
    summed = r.sum(1).reshape(5, -1)
    np.testing.assert_allclose(x, summed / np.abs(summed).sum(1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(np.abs(x).sum(1), 1.0, rtol=1e-14)


def test_features_equal_corelay_division_by_the_sum_for_non_negative_maps(rng):
    r = rng.random((4, 6, 6))
    np.testing.assert_allclose(spectral.features(r), (r / r.sum((1, 2), keepdims=True)).reshape(4, -1), rtol=1e-14)


def test_features_zero_map_stays_zero_and_pooling_sums_blocks():
    r = np.zeros((2, 1, 4, 4))
    r[1, 0, :2, :2] = 1.0
    x = spectral.features(r, pool=2)
    assert x.shape == (2, 4)
    np.testing.assert_array_equal(x[0], 0)
    np.testing.assert_array_equal(x[1], [1, 0, 0, 0])


def test_features_errors_name_the_problem():
    with pytest.raises(SpecError, match="divid"):
        spectral.features(np.ones((2, 5, 5)), pool=2)
    with pytest.raises(InputError, match="NaN"):
        spectral.features(np.full((2, 3), np.nan))
    with pytest.raises(InputError, match="shape"):
        spectral.features(np.ones(3))


# -- graph --------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 40), k=st.integers(1, 12), seed=st.integers(0, 2**16))
def test_knn_affinity_entries_are_half_or_one_and_symmetric(n, k, seed):
    x = np.random.default_rng(seed).standard_normal((n, 3))
    a = spectral.knn_affinity(x, k).toarray()
    assert set(np.unique(a)) <= {0.0, 0.5, 1.0}
    np.testing.assert_array_equal(a, a.T)
    np.testing.assert_array_equal(np.diag(a), 0)
    # A = (O + Oᵀ)/2 with exactly min(k, n - 1) ones per row of O: the total is n·k, each row has >= k edges
    assert a.sum() == pytest.approx(n * min(k, n - 1))
    assert (a > 0).sum(1).min() >= min(k, n - 1)


def test_knn_affinity_equals_brute_force_on_distinct_points(rng):
    x = rng.standard_normal((30, 4))
    k = 5
    distances = np.linalg.norm(x[:, None] - x[None], axis=-1)
    np.fill_diagonal(distances, np.inf)
    out = np.zeros((30, 30))
    out[np.repeat(np.arange(30), k), np.argsort(distances, 1)[:, :k].ravel()] = 1
    np.testing.assert_array_equal(spectral.knn_affinity(x, k).toarray(), (out + out.T) / 2)


def test_duplicates_never_make_a_sample_its_own_neighbour():
    x = np.zeros((6, 2))  # all identical: any order of neighbours is right, but never oneself
    neighbours = spectral.nearest_neighbors(x, 3)
    assert not (neighbours == np.arange(6)[:, None]).any()


def test_normalized_adjacency_matches_dense_formula(rng):
    a = spectral.knn_affinity(rng.standard_normal((25, 3)), 4)
    d = a.toarray().sum(1)
    expected = a.toarray() / np.sqrt(np.outer(d, d))
    np.testing.assert_allclose(spectral.normalized_adjacency(a).toarray(), expected, rtol=1e-14)


# -- spectrum -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("sizes", [(40, 40), (30, 50, 20), (200, 150, 120), (60,) * 9])  # 3rd, 4th: ARPACK
def test_eigenvalues_in_0_2_with_one_zero_per_component(rng, sizes):
    x, _ = blobs(rng, sizes)
    a = spectral.knn_affinity(x, 10)
    components = connected_components(a, directed=False)[0]
    assert components == len(sizes)
    values, vectors = spectral.spectral_embedding(spectral.normalized_adjacency(a), 32)
    assert values.shape == (32,) and vectors.shape == (sum(sizes), 32)
    assert np.all(np.diff(values) >= -1e-12) and values.min() >= 0 and values.max() <= 2
    np.testing.assert_allclose(values[:components], 0, atol=1e-10)
    assert values[components] > 1e-3
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, rtol=1e-12)


def test_many_components_give_every_zero_eigenvalue_and_match_dense(rng):
    x, _ = blobs(rng, (120,) * 9)  # a repeated eigenvalue 0 of L: whole-matrix Lanczos can miss copies
    m = spectral.normalized_adjacency(spectral.knn_affinity(x, 10))
    values, _ = spectral.spectral_embedding(m, 32)
    np.testing.assert_allclose(values, np.sort(1 - np.linalg.eigvalsh(m.toarray()))[:32], atol=1e-10)


def test_eigenpairs_solve_the_laplacian(rng):
    x = rng.standard_normal((300, 5))  # one connected cloud, ARPACK path
    m = spectral.normalized_adjacency(spectral.knn_affinity(x, 10))
    values, _ = spectral.spectral_embedding(m, 8)
    dense = np.sort(1 - np.linalg.eigvalsh(m.toarray()))[:8]
    np.testing.assert_allclose(values, dense, atol=1e-10)


def test_eigengap_suggests_the_number_of_blobs(rng):
    for sizes in [(40, 40), (30, 50, 20), (25, 25, 25, 25, 25)]:
        x, _ = blobs(rng, sizes)
        values, _ = spectral.spectral_embedding(spectral.normalized_adjacency(spectral.knn_affinity(x, 10)), 32)
        assert spectral.eigengap(values, range(2, 11)) == len(sizes)


def test_eigengap_closed_form_and_errors():
    assert spectral.eigengap(np.array([0, 0.1, 0.2, 0.9, 1.0]), range(1, 5)) == 3
    assert spectral.eigengap(np.array([0, 0.5, 1.0]), [1, 2]) == 1  # ties: the smaller k
    with pytest.raises(SpecError, match="fits 3 eigenvalues"):
        spectral.eigengap(np.array([0, 0.5, 1.0]), [5])


def test_kmeans_finds_the_blobs_largest_first(rng):
    x, truth = blobs(rng, (20, 60, 35))
    _, vectors = spectral.spectral_embedding(spectral.normalized_adjacency(spectral.knn_affinity(x, 10)), 32)
    labels = spectral.kmeans(vectors, 3)
    assert np.bincount(labels).tolist() == [60, 35, 20]
    for blob in range(3):
        assert len(np.unique(labels[truth == blob])) == 1
    # CoRelAy's choice, all 32 columns, splits these blobs: the later eigenvectors describe their insides
    assert np.bincount(spectral.kmeans(vectors, 3, columns="all")).tolist() != [60, 35, 20]


def test_by_size_keeps_the_partition():
    labels = np.array([5, 5, 2, 2, 2, 9])
    np.testing.assert_array_equal(spectral.by_size(labels), [1, 1, 0, 0, 0, 2])


def test_conductance_closed_forms(rng):
    x, truth = blobs(rng, (30, 30))
    a = spectral.knn_affinity(x, 5)
    assert spectral.conductance(a, truth == 0) == 0.0
    # a path 0-1-2-3 with unit weights: S = {0, 1}: cut 1, vol S = 1 + 2 = 3, vol rest = 3
    from scipy.sparse import csr_matrix

    path = csr_matrix(np.array([[0, 1, 0, 0], [1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0]], dtype=float))
    assert spectral.conductance(path, np.array([True, True, False, False])) == pytest.approx(1 / 3)


def test_pictures_have_two_columns(rng):
    x, _ = blobs(rng, (30, 30), dim=8)
    assert spectral.tsne(x, seed=0).shape == (60, 2)
    assert spectral.tsne(x[:3]).shape == (3, 2)


def test_missing_extra_names_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # as if not installed: importing it raises ImportError
    with pytest.raises(MissingExtraError, match=r"umap-learn: pip install 'lrpkit\[analysis\]'"):
        spectral.require("umap")
