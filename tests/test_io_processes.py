"""Saving and loading across processes: kill -9 during saves, loads beside saves, two savers; and the peak memory
of loading crafted files, measured in a fresh interpreter."""

from __future__ import annotations

import gzip
import json
import os
import random
import signal
import struct
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

import lrpkit
from lrpkit.errors import LrpkitError

pytestmark = [
    pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="needs fork and /proc"),
    pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning"),  # Python >= 3.12
]

NETS = [lrpkit.Network([lrpkit.Linear(32), lrpkit.ReLU(), lrpkit.Linear(10)], seed=k) for k in range(3)]
X = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(0))
SAVED, LRPKIT_ERROR, OTHER_ERROR = 0, 3, 4


def _is_one_of_the_nets(net: lrpkit.Network) -> bool:
    with torch.no_grad():
        return any(torch.equal(net(X), known(X)) for known in NETS)


def _fork(work) -> int:
    """Runs ``work()`` in a child process; its exit code says how it ended (SAVED, LRPKIT_ERROR, OTHER_ERROR)."""
    pid = os.fork()
    if pid:
        return pid
    code = SAVED
    try:
        work()
    except LrpkitError:
        code = LRPKIT_ERROR
    except BaseException:
        traceback.print_exc()
        code = OTHER_ERROR
    finally:
        os._exit(code)


def _save_forever(path: Path) -> None:
    for k in range(10**9):
        NETS[k % len(NETS)].save(path)


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)


def test_kill_9_at_any_point_of_a_save_leaves_a_loadable_model_and_nothing_piles_up(tmp_path):
    path = tmp_path / "model"
    NETS[0].save(path)
    rng = random.Random(0)
    for _ in range(60):
        pid = _fork(lambda: _save_forever(path))
        time.sleep(rng.uniform(0.0, 0.05))  # a save takes ~20 ms: kills land in every phase of one
        _kill(pid)
        assert _is_one_of_the_nets(lrpkit.load(path))
        assert len(list(path.iterdir())) <= 5  # model.json, three weights (one per net), one temporary file
    NETS[1].save(path)
    names = sorted(p.name for p in path.iterdir())
    assert len(names) <= 3 and "model.json" in names and all(n.startswith(("model", "weights-")) for n in names)
    assert list(tmp_path.iterdir()) == [path]  # nothing beside the model either


def test_loads_beside_a_saver_never_fail(tmp_path):
    path = tmp_path / "model"
    NETS[0].save(path)
    pid = _fork(lambda: _save_forever(path))
    loads, failures, deadline = 0, [], time.monotonic() + 2.0
    try:
        while time.monotonic() < deadline:
            try:
                assert _is_one_of_the_nets(lrpkit.load(path))
            except Exception as err:
                failures.append(repr(err))
            loads += 1
        assert os.waitpid(pid, os.WNOHANG) == (0, 0), "the saver stopped"
    finally:
        _kill(pid)
    assert failures == [] and loads > 50


def test_two_savers_at_once_both_succeed(tmp_path):
    path = tmp_path / "model"
    pids = [_fork(lambda k=k: [NETS[k].save(path) for _ in range(30)]) for k in (0, 1)]
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    assert codes == [SAVED, SAVED]
    assert _is_one_of_the_nets(lrpkit.load(path))
    assert len(list(path.iterdir())) <= 3


# -- peak memory of crafted inputs ----------------------------------------------------------------------------

GIB = 2**30
MEASURE = r"""
import json, sys
from pathlib import Path
import lrpkit, lrpkit.model.io, lrpkit.model.data

def kib(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key + ":"))

root = Path(sys.argv[1])
lrpkit.load(root / "good")  # warm up: every import a load needs
idle = kib("VmRSS")
results = {}
for case in sys.argv[2:]:
    open("/proc/self/clear_refs", "w").write("5")  # the peak (VmHWM) starts again from the current size
    try:
        (lrpkit.mnist if case.startswith("idx") else lrpkit.load)(root / case)
        message = None
    except lrpkit.LrpkitError as err:
        message = str(err)
    results[case] = {"peak_mib": (kib("VmHWM") - idle) / 1024, "error": message}
print(json.dumps({"idle_mib": idle / 1024, "cases": results}))
"""


def _model(directory: Path, layers: list, tensors: dict | None = None, header: bytes | None = None) -> None:
    directory.mkdir()
    spec = {"format": "lrpkit-model", "version": 2, "weights": "weights-0000000000000000.safetensors"}
    (directory / "model.json").write_text(json.dumps({**spec, "layers": layers}))
    weights = directory / spec["weights"]
    if tensors is not None:
        save_file(tensors, str(weights))
    if header is not None:
        weights.write_bytes(len(header).to_bytes(8, "little") + header + bytes(16))


def _bomb(directory: Path, count: int, zeros_mib: int) -> None:
    """IDX test files whose gzip'd images declare ``count`` images, followed by ``zeros_mib`` MiB of zeros."""
    directory.mkdir()
    block = gzip.compress(bytes(2**20), 9)  # gzip members may be concatenated: one MiB of zeros each
    header = gzip.compress(struct.pack(">IIII", 2051, count, 28, 28))
    (directory / "t10k-images-idx3-ubyte.gz").write_bytes(header + block * zeros_mib)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(struct.pack(">II", 2049, 10) + bytes(10))


def _sparse(path: Path, size: int, head: bytes = b"") -> None:
    with open(path, "wb") as file:
        file.write(head)
        file.truncate(size)


def _crafted(root: Path) -> list[str]:
    NETS[0].save(root / "good")
    wide = [{"type": "Linear", "units": 10**6}, {"type": "Linear", "units": 10}]
    small = {k: v.contiguous() for k, v in NETS[0].state_dict().items()}
    _model(root / "spec_1e6_units", wide, tensors=small)
    promise = {"body.1.weight": {"dtype": "F32", "shape": [10**6, 784], "data_offsets": [0, 784 * 4 * 10**6]}}
    promise |= {"body.1.bias": {"dtype": "F32", "shape": [10**6], "data_offsets": [0, 4 * 10**6]}}
    promise |= {"body.2.weight": {"dtype": "F32", "shape": [10, 10**6], "data_offsets": [0, 40 * 10**6]}}
    promise |= {"body.2.bias": {"dtype": "F32", "shape": [10], "data_offsets": [0, 40]}}
    _model(root / "header_promises_3gb", wide, header=json.dumps(promise).encode())
    _model(root / "spec_1e12_units", [{"type": "Linear", "units": 10**12}, {"type": "Linear", "units": 10}])
    _model(root / "header_length_2e60", wide, header=b"{}")
    (root / "header_length_2e60" / "weights-0000000000000000.safetensors").write_bytes((2**60).to_bytes(8, "little"))
    (root / "nested_json").mkdir()
    (root / "nested_json" / "model.json").write_text("[" * 8_000_000)
    (root / "json_3gb").mkdir()
    _sparse(root / "json_3gb" / "model.json", 3 * GIB, b"{")
    _sparse(root / "file_3gb", 3 * GIB)
    _model(root / "weights_3gb", wide)
    _sparse(root / "weights_3gb" / "weights-0000000000000000.safetensors", 3 * GIB)
    _bomb(root / "idx_bomb_300mib", 10, 300)
    _bomb(root / "idx_declares_1e9", 10**9, 300)
    return [p.name for p in sorted(root.iterdir()) if p.name != "good"]


def test_crafted_files_cost_no_memory_and_give_lrpkit_errors(tmp_path):
    cases = _crafted(tmp_path)
    done = subprocess.run([sys.executable, "-c", MEASURE, str(tmp_path), *cases], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    for case, result in report["cases"].items():
        assert result["error"] is not None, case
        assert result["peak_mib"] < 200, (case, result)
