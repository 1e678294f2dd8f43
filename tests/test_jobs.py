"""explain_dataset in-process: the store against direct engine calls, resuming, refusals, dtypes, export, CLI."""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch

import lrpkit
from dataset_helpers import LoggedDataset, computations, tiny_cnn
from lrpkit.cli.main import main
from lrpkit.errors import DataError, SpecError, StoreError, TargetError
from lrpkit.jobs import explain_dataset, export_h5, open_store
from lrpkit.jobs.store import Store

N, CHUNK = 100, 16


@pytest.fixture(scope="module")
def data(mnist_data):
    return mnist_data.test.images[:N].numpy(), mnist_data.test.labels[:N].numpy()


@pytest.fixture(scope="module")
def net():
    return tiny_cnn()


def test_store_holds_what_the_engine_gives_chunk_by_chunk(tmp_path, data, net):
    x, labels = data
    store = explain_dataset(net, x, tmp_path / "s", batch_size=CHUNK, source_options={"labels": labels})
    assert len(store) == N and store.complete and store.chunks == 7
    for chunk in range(store.chunks):
        rows = store.rows(chunk)
        xb = torch.from_numpy(x[rows])
        expected = lrpkit.lrp(net, xb, torch.from_numpy(labels[rows]), "epsilon_plus")
        np.testing.assert_array_equal(store.relevance[rows], expected.numpy())
        # the logits of the engine's own forward (bias added after the bias-free product): the model's up to rounding
        np.testing.assert_allclose(store.logits[rows], net(xb).detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(store.prediction[:], store.logits[:].argmax(1))
    np.testing.assert_array_equal(store.label[:], labels)
    np.testing.assert_array_equal(store.index[:], np.arange(N))
    assert store.attrs["method"] == "epsilon_plus" and store.attrs["target"] == "true"
    assert store.attrs["model"] == open_store(tmp_path / "s").attrs["model"]
    assert store.relevance.chunks == (CHUNK, 1, 28, 28) and store.logits.chunks == (CHUNK, 10)


def test_target_all_and_class_and_pred(tmp_path, data, net):
    x = data[0][:20]
    every = explain_dataset(net, x, tmp_path / "all", target="all", batch_size=8, method="zbab")
    assert every.relevance.shape == (20, 10, 1, 28, 28)
    np.testing.assert_array_equal(every.relevance[:8], lrpkit.lrp(net, torch.from_numpy(x[:8]), "all", "zbab"))
    three = explain_dataset(net, x, tmp_path / "three", target=3, batch_size=8, method="zbab")
    np.testing.assert_array_equal(three.relevance[:], every.relevance[:, 3])
    pred = explain_dataset(net, x, tmp_path / "pred", target="pred", batch_size=8, method="zbab")
    picked = every.relevance[:][np.arange(20), pred.prediction[:]]
    np.testing.assert_array_equal(pred.relevance[:], picked)
    assert (pred.label[:] == -1).all()  # an array without labels


def test_true_target_needs_labels(tmp_path, data, net):
    with pytest.raises(DataError, match="sample 0 has no label; target 'true' needs one"):
        explain_dataset(net, data[0], tmp_path / "s")
    assert not (tmp_path / "s").exists()  # refused before anything was written
    with pytest.raises(TargetError, match="target must be one of"):
        explain_dataset(net, data[0], tmp_path / "s", target="most")
    with pytest.raises(SpecError, match="dtype must be one of float32, float16, got 'float64'"):
        explain_dataset(net, data[0], tmp_path / "s", dtype="float64")
    with pytest.raises(SpecError, match="batch_size must be a positive int, got 0"):
        explain_dataset(net, data[0], tmp_path / "s", batch_size=0)


def test_source_that_does_not_fit_the_model_is_refused_before_writing(tmp_path, net):
    with pytest.raises(Exception, match=r"1, 5, 5\)"):
        explain_dataset(net, np.zeros((4, 1, 5, 5), np.float32), tmp_path / "s", target="pred")
    assert not (tmp_path / "s").exists()


class _InterruptError(Exception):
    pass


def test_resume_after_an_interruption_is_identical_and_skips_finished_chunks(tmp_path, data, net, monkeypatch):
    x, labels = data
    whole = explain_dataset(net, x, tmp_path / "whole", batch_size=CHUNK, source_options={"labels": labels})
    log = tmp_path / "reads.log"
    source = LoggedDataset(x, labels, log)
    write = Store.write_chunk

    def stop_after_three(self, chunk, values):
        if chunk == 3:
            raise _InterruptError
        write(self, chunk, values)

    monkeypatch.setattr(Store, "write_chunk", stop_after_three)
    with pytest.raises(_InterruptError):
        explain_dataset(net, source, tmp_path / "s", batch_size=CHUNK)
    monkeypatch.setattr(Store, "write_chunk", write)
    assert open_store(tmp_path / "s").finished.tolist() == [True] * 3 + [False] * 4
    resumed = explain_dataset(net, source, tmp_path / "s", batch_size=CHUNK)
    assert resumed.complete
    for name in ("relevance", "logits", "prediction", "label", "index"):
        np.testing.assert_array_equal(getattr(resumed, name)[:], getattr(whole, name)[:])
    counts = computations(log, CHUNK, N)
    assert [counts[c] for c in range(7)] == [1, 1, 1, 2, 1, 1, 1]  # chunk 3 computed, not written, then redone
    explain_dataset(net, source, tmp_path / "s", batch_size=CHUNK)  # finished: nothing is computed again
    assert computations(log, CHUNK, N) == counts


DRIVER = """
import sys, numpy as np
sys.path.insert(0, {tests!r})
import lrpkit, torch
from dataset_helpers import LoggedDataset, tiny_cnn
from lrpkit.model.data import mnist
test = mnist().test
source = LoggedDataset(test.images[:{n}].numpy(), test.labels[:{n}].numpy(), {log!r}, delay={delay})
lrpkit.explain_dataset(tiny_cnn(), source, {out!r}, batch_size={chunk}, threads=1, progress=False)
"""


def test_sigkilled_driver_resumes_identically_without_recomputing(tmp_path, data):
    x, labels = data
    log, out = tmp_path / "reads.log", tmp_path / "s"
    script = DRIVER.format(tests=str(Path(__file__).parent), n=N, log=str(log), out=str(out), chunk=CHUNK, delay=0.02)
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        _wait_for(lambda: (out / "zarr.json").exists() and open_store(out).finished.sum() >= 2, driver)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    done = open_store(out).finished
    assert 2 <= done.sum() < len(done)
    with torch.inference_mode():  # the same thread count as the killed driver
        torch.set_num_threads(1)
        resumed = explain_dataset(tiny_cnn(), LoggedDataset(x, labels, log), out, batch_size=CHUNK, threads=1)
    whole = explain_dataset(tiny_cnn(), x, tmp_path / "whole", batch_size=CHUNK, threads=1,
                            source_options={"labels": labels})  # fmt: skip
    for name in ("relevance", "logits", "prediction", "label", "index"):
        np.testing.assert_array_equal(getattr(resumed, name)[:], getattr(whole, name)[:])
    counts = computations(log, CHUNK, N)
    assert all(counts[c] == 1 for c in np.flatnonzero(done))  # finished before the kill: never recomputed
    assert all(1 <= counts[c] <= 2 for c in range(len(done)))


def _wait_for(condition, process, timeout=120.0):
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if process.poll() is not None:
            raise AssertionError(f"the driver ended early with code {process.returncode}")
        try:
            if condition():
                return
        except (StoreError, OSError, KeyError):
            pass  # the store is being created
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"method": "zbab"}, "method: 'epsilon_plus' there, 'zbab' now"),
        ({"model": tiny_cnn(seed=1)}, "model: fingerprint [0-9a-f]{12} there, fingerprint [0-9a-f]{12} now"),
        ({"data": "other"}, "source digest"),
        ({"target": "pred"}, "target: 'true' there, 'pred' now"),
        ({"batch_size": 8}, "chunk_size: 16 there, 8 now"),
        ({"dtype": "float16"}, "dtype: 'float32' there, 'float16' now"),
    ],
)
def test_another_run_on_the_same_store_is_refused_naming_what_differs(tmp_path, data, net, change, named):
    x, labels = data
    explain_dataset(net, x, tmp_path / "s", batch_size=CHUNK, source_options={"labels": labels})
    kwargs = {"model": net, "data": x, "batch_size": CHUNK, **change}
    if isinstance(kwargs["data"], str):
        kwargs["data"] = x[::-1].copy()
    with pytest.raises(StoreError, match=f"this store was written by another run.*{named}"):
        explain_dataset(kwargs.pop("model"), kwargs.pop("data"), tmp_path / "s", **kwargs,
                        source_options={"labels": labels})  # fmt: skip


def test_a_foreign_directory_is_not_overwritten(tmp_path, data, net):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "mine.txt").write_text("keep me")
    with pytest.raises(StoreError, match="not a dataset store"):
        explain_dataset(net, data[0], tmp_path / "s", target="pred")
    assert (tmp_path / "s" / "mine.txt").read_text() == "keep me"


def test_full_disk_stops_with_a_clear_error_and_a_valid_store(tmp_path, data, net, monkeypatch):
    x, labels = data
    store_path = tmp_path / "s"
    real = __import__("zarr").Array.__setitem__
    writes = {"n": 0}

    def fill_up(self, key, value):
        writes["n"] += 1
        if writes["n"] > 2 * 6 + 3:  # two chunks (6 writes each: 5 arrays + marker), then part of the third
            raise OSError(errno.ENOSPC, "No space left on device")
        real(self, key, value)

    monkeypatch.setattr(__import__("zarr").Array, "__setitem__", fill_up)
    with pytest.raises(StoreError, match="the disk is full while writing chunk 2.*valid up to its finished chunks"):
        explain_dataset(net, x, store_path, batch_size=CHUNK, source_options={"labels": labels})
    monkeypatch.undo()
    partial = open_store(store_path)
    assert partial.finished.tolist() == [True, True] + [False] * 5
    assert np.isnan(partial.relevance[2 * CHUNK :]).all() or not partial.finished[2]
    resumed = explain_dataset(net, x, store_path, batch_size=CHUNK, source_options={"labels": labels})
    whole = explain_dataset(net, x, tmp_path / "whole", batch_size=CHUNK, source_options={"labels": labels})
    np.testing.assert_array_equal(resumed.relevance[:], whole.relevance[:])


def test_float16_and_uncompressed_stores(tmp_path, data, net):
    x, labels = data
    sizes = {}
    for dtype in ("float32", "float16"):
        for compression in ("zstd", "none"):
            out = tmp_path / f"{dtype}-{compression}"
            store = explain_dataset(net, x, out, batch_size=CHUNK, dtype=dtype, compression=compression,
                                    source_options={"labels": labels})  # fmt: skip
            assert store.relevance.dtype == np.dtype(dtype)
            sizes[dtype, compression] = sum(f.stat().st_size for f in (out / "relevance").rglob("*") if f.is_file())
    half, full = open_store(tmp_path / "float16-none"), open_store(tmp_path / "float32-none")
    np.testing.assert_array_equal(half.relevance[:], full.relevance[:].astype(np.float16))
    assert sizes["float16", "none"] < 0.6 * sizes["float32", "none"]
    assert sizes["float32", "zstd"] < sizes["float32", "none"]


def test_float16_overflow_is_refused(tmp_path):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    torch.nn.init.constant_(model[1].weight, 300.0)
    x = np.ones((3, 4), np.float32) * np.array([[1], [1000], [1]], np.float32)  # sample 1: R_i = 3e5 > 65504
    with pytest.raises(StoreError, match="relevance of sample 1 exceeds float16's range.*use dtype float32"):
        explain_dataset(model, x, tmp_path / "s", target=0, method="simple", dtype="float16")


def test_user_model_is_left_as_it_was(tmp_path, data):
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10), torch.nn.BatchNorm1d(10)).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    store = explain_dataset(model, data[0][:8], tmp_path / "s", target="pred", batch_size=4)
    assert model.training  # and the BatchNorm statistics were not updated by a forward pass in training mode
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    eval_logits = model.eval()(torch.from_numpy(data[0][:8])).detach().numpy()  # the engine merges the BatchNorm
    np.testing.assert_allclose(store.logits[:], eval_logits, rtol=1e-5, atol=1e-6)


def test_plain_sequential_and_a_saved_model(tmp_path, data, net):
    x = data[0][:8]
    seq = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))
    store = explain_dataset(seq, x, tmp_path / "seq", target=2, method="epsilon", batch_size=4)
    np.testing.assert_array_equal(store.relevance[:], lrpkit.lrp(seq, torch.from_numpy(x), 2, "epsilon").numpy())
    net.save(tmp_path / "model")
    saved = explain_dataset(tmp_path / "model", x, tmp_path / "saved", target="pred", batch_size=4)
    again = explain_dataset(net, x, tmp_path / "saved", target="pred", batch_size=4)  # same fingerprint: resumes
    assert saved.attrs["model"] == again.attrs["model"]


def test_export_h5_virelay_layout(tmp_path, data, net):
    import h5py

    x, labels = data
    store = explain_dataset(net, x[:40], tmp_path / "s", batch_size=CHUNK, source_options={"labels": labels[:40]})
    with h5py.File(export_h5(store, tmp_path / "a.h5"), "r") as h5:
        np.testing.assert_array_equal(h5["attribution"][:], store.relevance[:])
        np.testing.assert_array_equal(h5["prediction"][:], store.logits[:])
        np.testing.assert_array_equal(h5["label"][:].argmax(1), labels[:40])
        assert h5["index"].dtype == np.uint32 and h5["index"][:].tolist() == list(range(40))
    every = explain_dataset(net, x[:8], tmp_path / "all", target="all", batch_size=4)
    with pytest.raises(StoreError, match="target 'all'.*--class 0..9"):
        export_h5(every, tmp_path / "b.h5")
    with h5py.File(export_h5(every, tmp_path / "b.h5", class_index=7), "r") as h5:
        np.testing.assert_array_equal(h5["attribution"][:], every.relevance[:, 7])
        assert (h5["label"][:].argmax(1) == 7).all()


def test_open_store_refuses_other_things(tmp_path):
    import zarr

    with pytest.raises(StoreError, match="not a dataset store"):
        open_store(tmp_path)
    zarr.open_group(str(tmp_path / "g"), mode="w")
    with pytest.raises(StoreError, match="not an lrpkit dataset store"):
        open_store(tmp_path / "g")


def test_cli_explain_dataset_resume_and_export(tmp_path, capsys, net):
    net.save(tmp_path / "m")
    images = tmp_path / "images"
    from PIL import Image

    for i in range(6):
        (images / f"class{i % 2}").mkdir(parents=True, exist_ok=True)
        Image.new("L", (32, 32), 40 * i).save(images / f"class{i % 2}" / f"{i}.png")
    (images / "class1" / "bad.png").write_bytes(b"nope")
    argv = ["explain-dataset", str(tmp_path / "m"), "--data", str(images), "--out", str(tmp_path / "s"),
            "--batch-size", "4", "--quiet"]  # fmt: skip
    assert main(argv) == 2
    assert "bad.png: cannot read image" in capsys.readouterr().err
    assert main([*argv, "--skip-bad"]) == 0
    out = capsys.readouterr().out
    assert "2/2 chunks finished" in out and "skipped class1/bad.png" in out
    store = open_store(tmp_path / "s")
    assert store.relevance.shape == (6, 1, 28, 28) and store.attrs["classes"] == ["class0", "class1"]
    assert main([*argv, "--skip-bad", "--method", "zbab"]) == 2
    assert "method: 'epsilon_plus' there, 'zbab' now" in capsys.readouterr().err
    assert main(["export-h5", str(tmp_path / "s"), str(tmp_path / "s.h5")]) == 0
    assert (tmp_path / "s.h5").is_file()


def test_cli_workers_without_ray_names_the_extra(tmp_path, capsys, net, monkeypatch):
    net.save(tmp_path / "m")
    monkeypatch.setitem(sys.modules, "ray", None)
    argv = ["explain-dataset", str(tmp_path / "m"), "--out", str(tmp_path / "s"), "--workers", "2", "--quiet"]
    assert main(argv) == 2
    assert "pip install 'lrpkit[ray]'" in capsys.readouterr().err


def test_public_names():
    assert lrpkit.explain_dataset is explain_dataset and lrpkit.open_store is open_store


@pytest.fixture
def small_disk(tmp_path):
    """A 400 KiB tmpfs at ``tmp_path / "disk"`` (root only; skipped where mounting is not allowed)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk)],
                                           capture_output=True).returncode != 0:  # fmt: skip
        pytest.skip("mounting a small tmpfs needs root")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def test_a_really_full_disk_leaves_a_valid_store_that_resumes(tmp_path, small_disk, data, net):
    x, labels = data
    kwargs = {"batch_size": CHUNK, "compression": "none", "source_options": {"labels": labels}}
    with pytest.raises(StoreError, match=r"the disk is full while writing chunk \d+ \(No space left on device\)"):
        explain_dataset(net, x, small_disk / "s", **kwargs)
    partial = open_store(small_disk / "s")
    done = partial.finished
    assert 1 <= done.sum() < len(done)
    assert not [f for f in (small_disk / "s").rglob("*") if f.name.endswith(".tmp") or ".partial" in f.name]
    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    resumed = explain_dataset(net, x, small_disk / "s", **kwargs)
    whole = explain_dataset(net, x, tmp_path / "whole", **kwargs)
    for name in ("relevance", "logits", "prediction", "label", "index"):
        np.testing.assert_array_equal(getattr(resumed, name)[:], getattr(whole, name)[:])


def test_spray_reads_the_store_and_the_store_still_resumes(tmp_path, mnist_data, net):
    pytest.importorskip("sklearn")
    x, labels = mnist_data.test.images[:300].numpy(), mnist_data.test.labels[:300].numpy()
    kwargs = {"batch_size": 64, "source_options": {"labels": labels}}
    store = explain_dataset(net, x, tmp_path / "s", **kwargs)
    found = lrpkit.spray(tmp_path / "s", classes=[0], eigenvalues=8, clusters=range(2, 4), embeddings=())
    rows = np.flatnonzero(labels == 0)
    np.testing.assert_array_equal(np.sort(found[0].index), rows)  # the store's index, class 0's samples
    again = explain_dataset(net, x, tmp_path / "s", **kwargs)  # SpRAy's results inside do not upset a resume
    np.testing.assert_array_equal(again.relevance[:], store.relevance[:])
