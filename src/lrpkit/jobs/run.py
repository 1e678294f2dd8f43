"""``explain_dataset``: explain every sample of a source into a store, in-process or on Ray, resumably."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import DataError, SpecError, StoreError, TargetError
from .fingerprint import as_data, model_fingerprint
from .sources import Batch, Source, open_source
from .store import COMPRESSIONS, DTYPES, Layout, Store, open_store, prepare_store
from .work import TARGETS, ChunkWriter, Job, explain_batch, ready, recipe

DEFAULT_METHOD = "epsilon_plus"
DEFAULT_CHUNK = 256


def explain_dataset(
    model: Any,
    data: Any,
    out: str | Path,
    *,
    method: Any = DEFAULT_METHOD,
    target: Any = "true",
    batch_size: int = DEFAULT_CHUNK,
    workers: int | None = None,
    address: str | None = None,
    dtype: str = "float32",
    compression: str = "zstd",
    threads: int | None = None,
    weights: Any = None,
    progress: bool | None = None,
    source_options: dict[str, Any] | None = None,
    **options: Any,
) -> Store:
    """Explains every sample of ``data`` with ``method`` for ``target`` into the zarr store ``out`` and returns it
    (:func:`lrpkit.open_store`). Re-running the same call resumes: finished chunks are kept, the rest written.

    ``model``: any ``nn.Module``, a saved model directory, or a factory (callable) with ``weights`` (a state
    dict or ``.safetensors`` file). ``data``: see :func:`lrpkit.jobs.sources.open_source` (``source_options``:
    ``labels``, ``split``, ``preprocess``, ``skip_bad``). ``target``: ``"true"``, ``"pred"``, ``"all"`` or a
    class. ``batch_size``: samples per chunk (= per job batch). ``workers``/``address``: run on Ray (local
    workers, or the cluster at ``address``); ``threads``: torch threads in-process (default: as set) or per Ray
    worker (default 1). ``options`` go to :func:`lrpkit.lrp` (``bounds``, ``maxpool``).
    """
    _check_settings(target, batch_size, dtype, compression)
    source = open_source(data, **(source_options or {}))
    recipe_ = recipe(model, weights)
    driver_model = ready(model if isinstance(model, nn.Module) and weights is None else recipe_.build(), "cpu")
    local = workers is None and address is None
    with _threads(threads if local else None):
        # in-process, the probe is the first chunk unless done (a shape the engine sees again; its result is kept)
        keep = local and not _first_chunk_done(out)
        first = _probe(driver_model, source, min(batch_size, len(source)) if keep else 1, method, target, options)
        layout, attrs = _plan(driver_model, source, first[1], method, target, batch_size, options, dtype, compression)
        store = prepare_store(out, layout, attrs)
        job = Job(str(Path(out).resolve()), source, method, target, attrs["model"], options)
        todo = [int(c) for c in np.flatnonzero(~store.finished)]
        if local:
            _run_local(ChunkWriter(job, driver_model), todo, store, progress, first if keep else None)
            return store
    from .distributed import run_on_ray

    run_on_ray(job, recipe_, todo, store, workers, address, threads or 1, progress)
    return store


def _check_settings(target: Any, batch_size: Any, dtype: Any, compression: Any) -> None:
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise SpecError(f"batch_size must be a positive int, got {batch_size!r}")
    if dtype not in DTYPES:
        raise SpecError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if compression not in COMPRESSIONS:
        raise SpecError(f"compression must be one of {', '.join(COMPRESSIONS)}, got {compression!r}")
    if isinstance(target, str) and target not in TARGETS:
        raise TargetError(f"target must be one of {', '.join(TARGETS)} or a class index, got {target!r}")
    if not isinstance(target, (str, int)) or isinstance(target, bool):
        raise TargetError(f"target must be one of {', '.join(TARGETS)} or a class index, got {target!r}")


def _first_chunk_done(out: str | Path) -> bool:
    try:
        return open_store(out).is_finished(0)
    except StoreError:
        return False


def _probe(model: nn.Module, source: Source, size: int, method: Any, target: Any, options: dict) -> tuple[Batch, dict]:
    """The first ``size`` samples explained: checks that the source fits the model and that method and target are
    valid, before anything is written."""
    batch = source.read(0, size)
    dtype = next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)
    try:
        return batch, explain_batch(model, batch, target, method, options, dtype)
    except RuntimeError as err:
        raise DataError(f"{source!r}: samples of shape {batch.x.shape[1:]} do not fit the model ({err})") from None


def _plan(
    model: nn.Module, source: Source, values: dict, method: Any, target: Any, chunk: int, options: dict, dtype: str,
    compression: str,
) -> tuple[Layout, dict[str, Any]]:  # fmt: skip
    """The store's layout (from the probe's ``values``) and the attributes that identify the run."""
    layout = Layout(len(source), chunk, tuple(values["relevance"].shape[1:]), values["logits"].shape[1],
                    dtype, compression)  # fmt: skip
    attrs = {
        "model": model_fingerprint(model),
        "method": as_data(method),
        "options": as_data(options),
        "target": target,
        "source": as_data(source.description),
        "classes": source.classes,
        "skipped": as_data(source.skipped),
        "chunk_size": chunk,
        "dtype": dtype,
        "compression": compression,
    }
    return layout, attrs


@contextlib.contextmanager
def _threads(threads: int | None) -> Iterator[None]:
    """torch's intra-op thread count set to ``threads`` for the block (None: left as it is)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def progress_bar(store: Store, progress: bool | None) -> Any:
    """A tqdm bar over the store's samples (images/s), starting at the samples already finished."""
    from tqdm.auto import tqdm

    done = int(store.finished_samples.sum())
    return tqdm(
        total=len(store),
        initial=done,
        unit="img",
        desc="explaining",
        disable=None if progress is None else not progress,
    )


def _run_local(
    writer: ChunkWriter, todo: list[int], store: Store, progress: bool | None, first: tuple[Batch, dict] | None
) -> None:
    """Explains the chunks ``todo`` in order; chunk 0 from ``first`` (the probe, computed the same way)."""
    with progress_bar(store, progress) as bar:
        for chunk in todo:
            bar.update(writer.run(chunk, first if chunk == 0 else None))
