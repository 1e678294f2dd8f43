"""The comparison report: tables against independent statistics, PNG/HTML well-formed, the CLI end to end."""

import base64
import csv
import io
import itertools
import re
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

import lrpkit
from lrpkit.cli import main
from lrpkit.errors import SpecError
from lrpkit.evaluate import report
from lrpkit.evaluate.faithfulness import compare


@pytest.fixture(scope="module")
def case():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 6 * 6, 4)).double()
    x = torch.rand(12, 1, 8, 8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    comparison = compare(model, x, "pred", ["gradxinput", "sensitivity", "random"], steps=8, region=2)
    return model, x, comparison


def test_rows_match_independent_statistics(case):
    _, _, comparison = case
    table = report.rows(comparison)
    assert [row["aopc"] for row in table] == sorted((row["aopc"] for row in table), reverse=True)
    base = comparison.results["random"].curves.numpy()
    for row in table:
        curves = comparison.results[row["method"]].curves.numpy()
        per_sample = np.mean(curves[:, :1] - curves, axis=1)
        half = 1.959963984540054 * per_sample.std(ddof=1) / np.sqrt(len(per_sample))
        assert row["aopc"] == pytest.approx(per_sample.mean(), rel=1e-12)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((per_sample.mean() - half, per_sample.mean() + half))
        delta = per_sample - np.mean(base[:, :1] - base, axis=1)
        assert row["delta"] == pytest.approx(delta.mean(), abs=1e-12)
        assert row["samples"] == 12 and row["seconds"] >= 0


def test_markdown_and_csv(case):
    _, _, comparison = case
    table = report.rows(comparison)
    markdown = report.markdown_table(table, "random")
    lines = markdown.strip().splitlines()
    assert lines[0].startswith("| method | AOPC | 95% interval | vs. random [95%]") and len(lines) == 2 + 3
    assert all(line.count("|") == lines[0].count("|") for line in lines)
    parsed = list(csv.DictReader(io.StringIO(report.csv_table(table))))
    assert [r["method"] for r in parsed] == [r["method"] for r in table]
    assert float(parsed[0]["aopc"]) == table[0]["aopc"]  # full precision survives the round trip


def test_csv_quotes_awkward_names():
    assert report._csv_cell('ab, "x"') == '"ab, ""x"""'


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return Image.open(io.BytesIO(data)).size


def test_figures_are_pngs(case):
    _, x, comparison = case
    width, height = png_size(report.curves_png(comparison.results))
    assert width > 300 and height > 200
    wide, tall = png_size(report.heatmaps_png(x, comparison.relevances, count=3))
    fewer = png_size(report.heatmaps_png(x, dict(list(comparison.relevances.items())[:1]), count=3))
    assert fewer[0] == wide and fewer[1] < tall  # 3 columns; rows: the inputs and one per method


THIRTEEN = [
    "deeptaylor", "zbab", "wwab", "simple", "ab(2.0)", "epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1",
    "epsilon_alpha2_beta1_flat", "sensitivity", "integrated_gradients", "gradxinput", "random",
]  # fmt: skip


def test_thirteen_methods_stay_readable(case):
    """One row per method: the figure keeps its width (and its text its size in the 1100 px wide report page)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    _, x, comparison = case
    relevance = next(iter(comparison.relevances.values()))
    figure = report.heatmaps_figure(x, dict.fromkeys(THIRTEEN, relevance), count=6)
    few = report.heatmaps_figure(x, dict.fromkeys(THIRTEEN[:2], relevance), count=6)
    assert figure.get_size_inches()[0] == few.get_size_inches()[0] and figure.get_size_inches()[0] * 100 <= 1100
    renderer = FigureCanvasAgg(figure).get_renderer()
    figure.draw(renderer)
    first_column = figure.axes[::6]
    labels = [ax.yaxis.label.get_window_extent(renderer) for ax in first_column]
    assert [ax.get_ylabel() for ax in first_column][-4:] == [
        "sensitivity",
        "integrated_\ngradients",
        "gradxinput",
        "random",
    ]
    assert all(a.y0 >= b.y1 for a, b in itertools.pairwise(labels))  # top to bottom, none overlapping the next
    assert all(
        box.x0 >= 0 and box.x1 <= ax.get_window_extent(renderer).x0
        for box, ax in zip(labels, first_column, strict=True)
    )


def test_names_are_wrapped_where_they_break():
    assert report.wrap_name("epsilon_alpha2_beta1_flat") == "epsilon_\nalpha2_beta1_\nflat"
    assert report.wrap_name("random") == "random"
    assert all(len(line) <= 14 for line in report.wrap_name("x" * 40).split("\n"))


def test_html_is_self_contained_and_escaped(case):
    _, _, comparison = case
    table = report.rows(comparison)
    table[0]["method"] = "<script>alert(1)</script>"
    page = report.html_page("A & B", table, {"curves": report.curves_png(comparison.results)}, {"model": "m<1>"})
    assert "<script>" not in page and "&lt;script&gt;" in page and "A &amp; B" in page and "m&lt;1&gt;" in page
    assert not re.search(r"""(src|href)=["'](?!data:)""", page)  # nothing loaded from elsewhere
    (encoded,) = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", page)
    png_size(base64.b64decode(encoded))


def test_write_report_writes_every_file_atomically(case, tmp_path):
    _, x, comparison = case
    files = report.write_report(tmp_path / "out", comparison, x, details={"model": "test"})
    names = {"aopc.md", "aopc.csv", "aopc_per_sample.csv", "curves.png", "heatmaps.png", "report.html"}
    assert set(files) == names and {p.name for p in (tmp_path / "out").iterdir()} == names
    per_sample = list(csv.DictReader(io.StringIO(files["aopc_per_sample.csv"].read_text())))
    assert len(per_sample) == 12 and float(per_sample[3]["random"]) == comparison.results["random"].per_sample_aopc[3]
    assert (tmp_path / "out" / "report.html").read_text().count("data:image/png;base64,") == 2


def test_compare_checks_everything_before_working(case):
    model, x, _ = case
    with pytest.raises(SpecError, match="gradient_x"):
        compare(model, x, 0, ["gradient", "gradient_x"])
    with pytest.raises(SpecError, match="fill"):
        compare(model, x, 0, ["gradient"], fill="blur")
    with pytest.raises(SpecError, match="colour"):
        compare(model, x, 0, ["gradient"], colour="red")


# -- the command line -------------------------------------------------------------------------------


def write_idx(directory, images, labels):
    directory.mkdir()
    header = struct.pack(">IIII", 2051, len(images), 28, 28)
    (directory / "t10k-images-idx3-ubyte").write_bytes(header + images.astype(np.uint8).tobytes())
    (directory / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, len(labels)) + labels.tobytes())


@pytest.fixture
def saved(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "data", rng.integers(0, 256, (30, 28, 28)), rng.integers(0, 10, 30).astype(np.uint8))
    net = lrpkit.Network([lrpkit.Conv(3, 5, stride=3), lrpkit.ReLU(), lrpkit.Linear(10)])
    net.save(tmp_path / "model")
    return tmp_path


def test_cli_writes_every_file(saved, capsys):
    out = saved / "report"
    args = ["evaluate-methods", str(saved / "model"), "--data", str(saved / "data"), "--out", str(out)]
    args += ["--n", "6", "--steps", "5", "--region", "4", "--methods", "simple,gradxinput,random"]
    assert main(args) == 0
    names = {"aopc.md", "aopc.csv", "aopc_per_sample.csv", "curves.png", "heatmaps.png", "report.html"}
    assert {p.name for p in out.iterdir()} == names
    rows = list(csv.DictReader(io.StringIO((out / "aopc.csv").read_text())))
    assert sorted(r["method"] for r in rows) == ["gradxinput", "random", "simple"]
    assert all(r["samples"] == "6" for r in rows)
    printed = capsys.readouterr().out
    assert printed.startswith("| method | AOPC |") and "| `simple` |" in printed and str(out / "report.html") in printed


def test_cli_takes_every_dtype_and_the_method_syntax_of_explain(saved, capsys):
    """A float64 model (as explain and evaluate take it) and methods as name, name:param or JSON."""
    lrpkit.load(saved / "model").double().save(saved / "model64")
    out = saved / "report64"
    args = ["evaluate-methods", str(saved / "model64"), "--data", str(saved / "data"), "--out", str(out), "--n", "4"]
    assert main([*args, "--steps", "3", "--methods", 'ab:2,["zb", ["ab", 1.5]],random']) == 0
    rows = list(csv.DictReader(io.StringIO((out / "aopc.csv").read_text())))
    assert sorted(r["method"] for r in rows) == ["[zb, ab(1.5)]", "ab(2.0)", "random"]
    assert main(["explain", str(saved / "model64"), "--data", str(saved / "data"), "--out", str(saved / "e"),
                 "--method", "ab:2", "--n", "3"]) == 0  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--methods", "deeptaylor,banana"], "unknown explanation method 'banana'"),
        (["--methods", "deeptaylor,ab:0.5"], "method ab(0.5): AlphaBeta: alpha must be a finite number >= 1.0"),
        (["--steps", "0"], "steps"),
    ],
)
def test_cli_bad_input_gives_one_line(saved, capsys, extra, message):
    args = ["evaluate-methods", str(saved / "model"), "--data", str(saved / "data"), "--out", str(saved / "o")]
    assert main(args + extra) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (saved / "o").exists()
