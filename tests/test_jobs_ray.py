"""explain_dataset on Ray: one simulated two-node cluster (loopback, one CPU per node) serves every test here.

In-process and Ray give bit-identical stores (one torch thread each); a killed worker is retried, a killed driver
resumes without recomputing a finished chunk, and losing a node mid-run still completes the store.
"""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

ray = pytest.importorskip("ray")
import dataset_helpers  # noqa: E402 (after the skip)
from dataset_helpers import LoggedDataset, computations, reads, tiny_cnn  # noqa: E402
from lrpkit.jobs import explain_dataset, open_store  # noqa: E402

N, CHUNK = 200, 16
ARRAYS = ("relevance", "logits", "prediction", "label", "index")
TIMEOUT = 300.0  # seconds for anything on a busy two-core machine


@pytest.fixture(scope="session")
def cluster():
    from ray.cluster_utils import Cluster

    node = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    cluster = Cluster(initialize_head=True, head_node_args={**node, "include_dashboard": False})
    cluster.add_node(**node)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="warning", log_to_driver=False)
    ray.cloudpickle.register_pickle_by_value(dataset_helpers)  # workers need not import the tests
    yield cluster
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture(scope="module")
def data(mnist_data):
    return mnist_data.test.images[:N].numpy(), mnist_data.test.labels[:N].numpy()


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory):
    """The store of an uninterrupted in-process run with one torch thread."""
    x, labels = data
    out = tmp_path_factory.mktemp("reference") / "s"
    return explain_dataset(tiny_cnn(), x, out, batch_size=CHUNK, threads=1, source_options={"labels": labels})


def assert_same(store, reference):
    assert store.complete
    for name in ARRAYS:
        np.testing.assert_array_equal(getattr(store, name)[:], getattr(reference, name)[:], err_msg=name)


def test_ray_store_is_bit_identical_to_in_process(cluster, data, reference, tmp_path):
    from safetensors.torch import save_file

    x, labels = data
    save_file(tiny_cnn().state_dict(), str(tmp_path / "weights.safetensors"))
    factory = functools.partial(tiny_cnn, seed=5)  # other initial weights: the weights file must be loaded
    store = explain_dataset(factory, x, tmp_path / "s", weights=str(tmp_path / "weights.safetensors"),
                            batch_size=CHUNK, workers=2, source_options={"labels": labels})  # fmt: skip
    assert_same(store, reference)
    assert store.attrs == reference.attrs


class Background:
    """``explain_dataset`` in a thread: the test kills things while it runs."""

    def __init__(self, **kwargs) -> None:
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, kwargs=kwargs, daemon=True)
        self.thread.start()

    def _run(self, **kwargs) -> None:
        try:
            self.store = explain_dataset(**kwargs)
        except BaseException as err:  # re-raised in join()
            self.error = err

    def join(self):
        self.thread.join(TIMEOUT)
        assert not self.thread.is_alive(), "the run did not finish"
        if self.error is not None:
            raise self.error
        return self.store


def wait_until(condition, timeout: float = TIMEOUT) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if condition():
                return
        except (OSError, KeyError, ValueError):
            pass  # the store is still being created
        time.sleep(0.05)
    raise AssertionError("timed out")


def finished(out: Path) -> int:
    return int(open_store(out).finished.sum()) if (out / "zarr.json").exists() else 0


def test_killed_worker_is_retried_and_the_store_is_identical(cluster, data, reference, tmp_path):
    x, labels = data
    log, out = tmp_path / "reads.log", tmp_path / "s"
    run = Background(model=tiny_cnn(), data=LoggedDataset(x, labels, log, delay=0.02), out=out, batch_size=CHUNK,
                     workers=2)  # fmt: skip
    wait_until(lambda: finished(out) >= 2)
    victim = next(pid for _, pid in reversed(reads(log)) if pid != os.getpid())
    os.kill(victim, signal.SIGKILL)
    assert finished(out) < open_store(out).chunks  # killed mid-run
    store = run.join()
    assert_same(store, reference)
    assert victim not in {pid for _, pid in reads(log)[-CHUNK:]}  # the rest was done by live workers


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray, dataset_helpers
from dataset_helpers import LoggedDataset, tiny_cnn
from lrpkit.model.data import mnist
ray.init(address={address!r}, logging_level="warning", log_to_driver=False)
ray.cloudpickle.register_pickle_by_value(dataset_helpers)
test = mnist().test
source = LoggedDataset(test.images[:{n}].numpy(), test.labels[:{n}].numpy(), {log!r}, delay=0.03)
import lrpkit
lrpkit.explain_dataset(tiny_cnn(), source, {out!r}, batch_size={chunk}, workers=2, progress=False)
"""


def test_sigkilled_driver_resumes_without_recomputing_finished_chunks(cluster, data, reference, tmp_path):
    x, labels = data
    log, out = tmp_path / "reads.log", tmp_path / "s"
    script = DRIVER.format(tests=str(Path(__file__).parent), address=cluster.address, n=N, log=str(log),
                           out=str(out), chunk=CHUNK)  # fmt: skip
    driver = subprocess.Popen([sys.executable, "-c", textwrap.dedent(script)])
    try:
        wait_until(lambda: driver.poll() is not None or finished(out) >= 3)
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    done = open_store(out).finished
    assert 3 <= done.sum() < len(done), "the driver was not killed mid-run"
    store = explain_dataset(tiny_cnn(), LoggedDataset(x, labels, log), out, batch_size=CHUNK, workers=2)
    assert_same(store, reference)
    counts = computations(log, CHUNK, N)
    assert all(counts[c] == 1 for c in np.flatnonzero(done))  # finished before the kill: computed once
    assert all(counts[c] >= 1 for c in range(len(done)))


def test_losing_a_node_mid_run_still_completes(cluster, data, reference, tmp_path):
    x, labels = data
    log, out = tmp_path / "reads.log", tmp_path / "s"
    node = next(n for n in cluster.worker_nodes)  # one CPU per node: each of the two workers is on its own node
    run = Background(model=tiny_cnn(), data=LoggedDataset(x, labels, log, delay=0.02), out=out, batch_size=CHUNK,
                     workers=2)  # fmt: skip
    try:
        wait_until(lambda: finished(out) >= 2)
        cluster.remove_node(node)
        assert finished(out) < open_store(out).chunks  # lost mid-run
        store = run.join()
    finally:
        cluster.add_node(num_cpus=1, object_store_memory=80 * 2**20)  # back to two nodes for later tests
        cluster.wait_for_nodes()
    assert_same(store, reference)


def test_a_worker_error_reaches_the_driver_as_the_same_error(cluster, data, tmp_path):
    from lrpkit.errors import DataError

    x, labels = data
    unlabelled = labels.copy()
    unlabelled[37] = -1  # the probe (sample 0) passes; the worker of chunk 2 meets it
    with pytest.raises(DataError, match="sample 37 has no label; target 'true' needs one"):
        explain_dataset(tiny_cnn(), LoggedDataset(x, unlabelled, tmp_path / "log"), tmp_path / "s",
                        batch_size=CHUNK, workers=2)  # fmt: skip
    assert not open_store(tmp_path / "s").finished[2]


def test_cli_workers_joins_the_cluster(cluster, tmp_path, capsys, data):
    from lrpkit.cli.main import main

    x, labels = data
    np.save(tmp_path / "x.npy", x[:40])
    np.save(tmp_path / "y.npy", labels[:40])
    tiny_cnn().save(tmp_path / "m")
    argv = ["explain-dataset", str(tmp_path / "m"), "--data", str(tmp_path / "x.npy"), "--labels",
            str(tmp_path / "y.npy"), "--out", str(tmp_path / "s"), "--batch-size", str(CHUNK), "--quiet"]  # fmt: skip
    assert main([*argv, "--workers", "2", "--address", cluster.address]) == 0
    assert "3/3 chunks finished" in capsys.readouterr().out
    local = explain_dataset(tiny_cnn(), x[:40], tmp_path / "local", batch_size=CHUNK, threads=1,
                            source_options={"labels": labels[:40]})  # fmt: skip
    np.testing.assert_array_equal(open_store(tmp_path / "s").relevance[:], local.relevance[:])
