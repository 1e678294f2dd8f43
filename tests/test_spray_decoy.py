"""examples/spray_decoy.py: its cluster scores, and one short partial run end to end through the dataset job."""

import json
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lrpkit.model.decoy import add_patches

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "spray_decoy.py"


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))  # the functions, without running main


def test_purity_and_recall_of_the_cluster_holding_most_patched_samples(example):
    labels = np.array([0, 0, 0, 1, 1, 1, 1, 2])
    patched = np.array([0, 0, 1, 1, 1, 1, 0, 1], dtype=bool)
    # cluster 1 holds 3 of the 5 patched samples; 3 of its 4 members are patched
    assert example["purity_recall"](labels, patched) == (3 / 4, 3 / 5)
    # mostly patched: clusters 1 (3 of 4) and 2 (1 of 1); together 4 of 5 members patched, 4 of 5 patched found
    assert example["union_purity_recall"](labels, patched) == pytest.approx((4 / 5, 4 / 5))
    assert example["union_purity_recall"](labels, np.zeros(8, dtype=bool)) == (0.0, 0.0)


def test_corners_are_read_back_from_the_masks(example):
    placed = torch.tensor([2, -1, 0, 3, 1])
    _, mask = add_patches(torch.zeros(5, 1, 8, 8), torch.ones(5), placed, size=2)
    assert example["corners"](mask).tolist() == placed.tolist()


def test_a_short_partial_run_end_to_end(tmp_path, monkeypatch, capsys):
    torch.manual_seed(0)
    argv = [str(EXAMPLE), "--steps", "2", "--classes", "3", "--skip-full", "--out", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", argv)
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    run = json.loads((tmp_path / "results.json").read_text())["partial"][0]
    assert run["class"] == 3 and set(run["methods"]) == {"epsilon_plus", "epsilon_gamma_box",
                                                         "epsilon_alpha2_beta1", "gradxinput"}  # fmt: skip
    for scores in run["methods"].values():
        assert 2 <= scores["k"] <= 10 and sum(scores["sizes"]) == 400  # every training image of class 3
        assert 0 < scores["purity"] <= 1 and 0 < scores["recall"] <= 1
        assert sum(map(sum, scores["clusters_by_corner"])) == 120  # the patched 30 %, each in one corner
    assert (tmp_path / "class-3-epsilon_plus.zarr").is_dir()
    assert "| 3 |" in capsys.readouterr().out
