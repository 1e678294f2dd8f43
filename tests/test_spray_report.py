"""The SpRAy report (self-contained HTML, figures, ranking) and the spray command end to end."""

import base64
import io
import json
import re
import sys

import numpy as np
import pytest
import threadpoolctl
from PIL import Image

import lrpkit
from lrpkit.analysis import report
from lrpkit.analysis import store as spray_store
from lrpkit.cli import main
from spray_data import synthetic, write_store

pytest.importorskip("zarr")


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    with threadpoolctl.threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def case():
    relevance, labels, patched = synthetic(np.random.default_rng(0))
    result = lrpkit.spray(relevance, labels, eigenvalues=16, clusters=range(2, 6), embeddings=("tsne",))
    return relevance, labels, patched, result


def pngs(page):
    return [Image.open(io.BytesIO(base64.b64decode(data))) for data in re.findall(r"base64,([A-Za-z0-9+/=]+)", page)]


def test_summary_in_ranking_order(case):
    *_, result = case
    rows = report.summary(result)
    assert [row["class"] for row in rows] == result.ranking() and rows[0]["class"] == 1
    assert rows[0]["sizes"] == [40, 20] and rows[0]["conductance"] == 0.0
    assert rows[0]["eigengap"] == pytest.approx(result[1].eigenvalues[2] - result[1].eigenvalues[1])
    assert json.loads(report.summary_json(result))["classes"][0]["class"] == 1


def test_html_is_self_contained_with_each_class_in_ranking_order(tmp_path, case):
    relevance, labels, _, result = case
    files = report.write_report(
        result, lambda c: relevance[labels == c], tmp_path, images=lambda c: relevance[labels == c]
    )
    page = files["report.html"].read_text()
    assert 'src="http' not in page and "<script" not in page
    order = [int(m) for m in re.findall(r'<section id="class-(\d+)">', page)]
    assert order == result.ranking()
    images = pngs(page)
    assert len(images) == 3 * 3 and all(image.size[0] > 50 for image in images)
    # the cluster figure: one row per cluster at the suggested k (2 for class 1)
    first_cluster_figure = images[2]
    assert first_cluster_figure.size[1] < first_cluster_figure.size[0]


def test_cluster_figure_mean_heatmap_tiles(case):
    relevance, labels, _patched, result = case
    png = report.clusters_png(result[1], relevance[labels == 1])
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    rows = 2  # clusters at the suggested k
    assert image.shape[0] == 3 * (rows * 8 + (rows - 1) * 2)  # zoom 3, tiles 8 px, padding 2 px


def test_typical_members_are_cluster_members(case):
    *_, result = case
    for cluster in range(2):
        picked = report.typical_members(result[1], cluster)
        assert (result[1].labels()[picked] == cluster).all() and len(picked) == report.EXAMPLES


def test_spray_command_end_to_end(tmp_path, case, capsys):
    relevance, labels, _, _ = case
    store = write_store(tmp_path / "store", relevance, labels)
    np.save(tmp_path / "images.npy", relevance)
    argv = ["spray", str(store), "--out", str(tmp_path / "out"), "--eigenvalues", "16", "--clusters", "2..5",
            "--embeddings", "tsne", "--images", str(tmp_path / "images.npy")]  # fmt: skip
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "#1 class 1: 60 samples, suggested k=2, sizes [40, 20], conductance of the smallest 0.0000" in out
    assert (tmp_path / "out" / "report.html").is_file() and (tmp_path / "out" / "analysis.h5").is_file()
    assert sorted(spray_store.read_results(store)) == [0, 1, 2]


def test_spray_command_errors_are_one_line(tmp_path, case, capsys, monkeypatch):
    relevance, labels, _, _ = case
    store = write_store(tmp_path / "store", relevance, labels)
    assert main(["spray", str(store), "--out", str(tmp_path / "o"), "--clusters", "two"]) == 2
    assert "--clusters 'two'" in capsys.readouterr().err
    assert main(["spray", str(store), "--out", str(tmp_path / "o"), "--classes", "7"]) == 2
    assert "[7] have no samples" in capsys.readouterr().err
    assert main(["spray", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "not a dataset store" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "zarr", None)
    assert main(["spray", str(store), "--out", str(tmp_path / "o")]) == 2
    assert "pip install 'lrpkit[analysis]'" in capsys.readouterr().err
