"""lrpkit.spray end to end on synthetic heatmaps: arrays and stores, results in the store, the ViRelAy file."""

import numpy as np
import pytest
import threadpoolctl

import lrpkit
from lrpkit.analysis import store as spray_store
from lrpkit.errors import DataError, InputError, SpecError
from spray_data import synthetic, write_store

zarr = pytest.importorskip("zarr")
h5py = pytest.importorskip("h5py")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """One BLAS/OpenMP thread: torch's and scikit-learn's OpenMP runtimes fight over 2 busy cores otherwise."""
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def data():
    return synthetic(np.random.default_rng(0))


@pytest.fixture(scope="module")
def result(data):
    relevance, labels, _ = data
    return lrpkit.spray(relevance, labels, eigenvalues=16, clusters=range(2, 6), embeddings=("tsne",))


def test_spray_finds_the_shortcut_group_and_ranks_its_class_first(data, result):
    _, labels, patched = data
    one = result[1]
    assert one.suggested == 2
    groups = one.labels()
    np.testing.assert_array_equal(groups == one.smallest(), patched[labels == 1])
    assert one.conductance == 0.0 and result.ranking()[0] == 1
    assert one.tsne.shape == (60, 2) and one.umap is None
    assert set(one.clusters) == {2, 3, 4, 5}
    assert "class 1" in repr(one) and "ranking [1" in repr(result)


def test_rows_and_index_point_back_to_the_samples(data, result):
    _, labels, _ = data
    for c, analysis in result.classes.items():
        np.testing.assert_array_equal(analysis.rows, np.flatnonzero(labels == c))
        np.testing.assert_array_equal(analysis.index, analysis.rows)


def test_store_gives_the_same_result_as_arrays(tmp_path, data, result):
    relevance, labels, _ = data
    path = write_store(tmp_path / "store", relevance, labels)
    from_store = lrpkit.spray(path, eigenvalues=16, clusters=range(2, 6), embeddings=("tsne",))
    for c in range(3):
        np.testing.assert_allclose(from_store[c].eigenvalues, result[c].eigenvalues, atol=1e-12)
        np.testing.assert_array_equal(from_store[c].labels(), result[c].labels())
        np.testing.assert_array_equal(from_store[c].index, result[c].rows + 1000)


def test_store_with_every_class_uses_each_class_map_and_skips_unwritten_rows(tmp_path, data, result):
    relevance, labels, _ = data
    every = np.zeros((len(labels), 3, *relevance.shape[1:]), np.float32)
    every[np.arange(len(labels)), labels] = relevance  # the map of the true class; the others zero
    written = np.ones(len(labels), bool)
    written[:5] = False  # a chunk not finished yet
    path = write_store(tmp_path / "all", every, labels, target="all", written=written)
    found = lrpkit.spray(path, classes=[0], eigenvalues=16, clusters=range(2, 6), embeddings=())
    np.testing.assert_array_equal(found[0].rows, np.arange(5, 60))
    expected = lrpkit.analysis.analyse_class(relevance[5:60], eigenvalues=16, clusters=range(2, 6), embeddings=())
    np.testing.assert_allclose(found[0].eigenvalues, expected.eigenvalues, atol=1e-12)


def test_results_written_into_the_store_read_back(tmp_path, data, result):
    relevance, labels, _ = data
    path = write_store(tmp_path / "store", relevance, labels)
    spray_store.write_results(result, path)
    spray_store.write_results(lrpkit.spray(relevance, labels, classes=[2], eigenvalues=8, embeddings=()), path)
    back = spray_store.read_results(path)
    assert sorted(back) == [0, 1, 2]  # class 2 replaced, the others kept
    assert back[2]["attrs"]["settings"]["eigenvalues"] == 8 and len(back[2]["eigenvalues"]) == 8
    np.testing.assert_array_equal(back[1]["kmeans-02"], result[1].clusters[2])
    np.testing.assert_array_equal(back[1]["eigenvalues"], result[1].eigenvalues)
    assert back[1]["attrs"]["suggested"] == 2 and "tsne" in back[1] and "umap" not in back[1]
    assert not [p for p in (path / "spray").iterdir() if p.name.startswith(".")]  # no staging left behind


def test_virelay_export_layout(tmp_path, result):
    file = spray_store.export_virelay(result, tmp_path / "analysis.h5")
    with h5py.File(file, "r") as h5:
        assert sorted(h5) == ["00000000", "00000001", "00000002"]
        group = h5["00000001"]
        np.testing.assert_array_equal(group["index"][()], result[1].index)
        assert group["index"].dtype == np.uint32
        spectral = group["embedding/spectral"]
        np.testing.assert_allclose(spectral.attrs["eigenvalue"], result[1].eigenvalues[::-1], rtol=1e-6)
        np.testing.assert_allclose(spectral[()], result[1].embedding[:, ::-1], rtol=1e-6)
        assert group["embedding/tsne"].attrs["embedding"] == "spectral"
        kmeans = group["cluster/kmeans-02"]
        assert kmeans.attrs["k"] == 2 and len(kmeans.attrs["index"]) == 16
        np.testing.assert_array_equal(kmeans[()], result[1].clusters[2])


def test_umap_picture(data):
    relevance, labels, _ = data
    found = lrpkit.spray(relevance, labels, classes=[1], eigenvalues=8, clusters=[2], embeddings=["umap"])
    assert found[1].umap.shape == (60, 2) and np.isfinite(found[1].umap).all()


def test_errors_name_the_problem(tmp_path, data):
    relevance, labels, _ = data
    with pytest.raises(InputError, match=r"class\(es\) \[7\] have no samples"):
        lrpkit.spray(relevance, labels, classes=[7])
    with pytest.raises(InputError, match="one per heatmap"):
        lrpkit.spray(relevance, labels[:5])
    with pytest.raises(SpecError, match="by must be"):
        lrpkit.spray(relevance, labels, by="truth")
    with pytest.raises(SpecError, match="unknown embedding"):
        lrpkit.spray(relevance, labels, embeddings=["pca"])
    with pytest.raises(SpecError, match="clusters must be"):
        lrpkit.spray(relevance, labels, clusters=[0, 2])
    with pytest.raises(SpecError, match="columns must be"):
        lrpkit.spray(relevance, labels, columns="first")
    with pytest.raises(DataError, match="not a dataset store"):
        lrpkit.spray(tmp_path)
    with pytest.raises(InputError, match="at least 2"):
        lrpkit.spray(relevance[:1], labels[:1])
    with pytest.raises(DataError, match="no SpRAy results"):
        spray_store.read_results(tmp_path)
