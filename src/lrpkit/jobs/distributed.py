"""Running a dataset job on Ray Data: the chunks to do are the rows of a Ray dataset, mapped by an actor pool of
:class:`ChunkActor` (the model loaded once per worker, one torch thread each on CPU, one GPU each where the
cluster has GPUs). Each actor writes its chunks straight into the store and sets their markers; the driver only
counts. Ray restarts a killed worker and retries its chunk; a chunk already marked is never recomputed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ..errors import LrpkitError, MissingExtraError
from .run import progress_bar
from .store import Store
from .work import ChunkWriter, Job, ModelRecipe


def require_ray() -> Any:
    try:
        import ray
        import ray.data
    except ImportError:
        raise MissingExtraError("--workers/--address run on Ray: pip install 'lrpkit[ray]'") from None
    return ray


class ChunkActor:
    """A Ray Data callable class: builds the model once, then explains the chunks of each batch of chunk ids.

    Errors lrpkit raises (bad data, a full disk) come back as data, so the driver can raise them as they are."""

    def __init__(self, job: Job, model: ModelRecipe, threads: int, gpu: bool) -> None:
        import torch

        torch.set_num_threads(threads)
        self.writer: ChunkWriter | None = None
        self.error = ""
        try:
            self.writer = ChunkWriter(job, model.build(), "cuda" if gpu else "cpu")
        except LrpkitError as err:
            self.error = str(err)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        samples, errors = [], []
        for chunk in batch["chunk"].tolist():
            try:
                if self.writer is None:
                    raise LrpkitError(self.error)
                samples.append(self.writer.run(chunk))
                errors.append("")
            except LrpkitError as err:
                samples.append(0)
                errors.append(f"{type(err).__name__}: {err}")
        return {"chunk": batch["chunk"], "samples": np.asarray(samples, np.int64), "error": np.asarray(errors)}


def run_on_ray(
    job: Job, model: ModelRecipe, todo: list[int], store: Store, workers: int | None, address: str | None,
    threads: int, progress: bool | None,
) -> None:  # fmt: skip
    """Explains the chunks ``todo`` with ``workers`` Ray workers of ``threads`` torch threads each."""
    ray = require_ray()
    if not todo:
        return
    started = _connect(ray, address, workers, threads)
    logger, context = logging.getLogger("ray.data"), ray.data.DataContext.get_current()
    level, bars = logger.level, context.enable_progress_bars
    logger.setLevel(logging.ERROR)  # Ray Data's notes on its plans and bars; failures still raise
    context.enable_progress_bars = False  # ours counts images/s
    try:
        _execute(ray, job, model, todo, store, workers, threads, progress)
    finally:
        logger.setLevel(level)
        context.enable_progress_bars = bars
        if started:
            ray.shutdown()


def _connect(ray: Any, address: str | None, workers: int | None, threads: int) -> bool:
    """Joins the running Ray session, the cluster at ``address``, or starts a local one; True if started here."""
    if ray.is_initialized():
        return False
    if address is None:
        ray.init(num_cpus=(workers or 1) * threads, include_dashboard=False, logging_level=logging.WARNING)
    else:
        ray.init(address=address, logging_level=logging.WARNING)
    return True


def _execute(
    ray: Any, job: Job, model: ModelRecipe, todo: list[int], store: Store, workers: int | None, threads: int,
    progress: bool | None,
) -> None:  # fmt: skip
    resources = ray.cluster_resources()
    gpu = resources.get("GPU", 0) > 0
    workers = workers or max(1, int(resources.get("GPU" if gpu else "CPU", 1) // (1 if gpu else threads)))
    chunks = ray.data.from_items([{"chunk": c} for c in todo], override_num_blocks=len(todo))
    explained = chunks.map_batches(
        ChunkActor, fn_constructor_kwargs={"job": job, "model": model, "threads": threads, "gpu": gpu},
        batch_size=1, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=min(workers, len(todo))),
        num_cpus=threads, num_gpus=1 if gpu else 0,
    )  # fmt: skip
    with progress_bar(store, progress) as bar:
        for batch in explained.iter_batches(batch_size=None, batch_format="numpy"):
            failed = [str(e) for e in batch["error"].tolist() if e]
            if failed:
                raise _error(failed[0])
            bar.update(int(batch["samples"].sum()))


def _error(text: str) -> LrpkitError:
    """The lrpkit error a worker reported as ``"TypeName: message"``, rebuilt with its type."""
    from .. import errors

    name, _, message = text.partition(": ")
    kind = getattr(errors, name, LrpkitError)
    return kind(message) if isinstance(kind, type) and issubclass(kind, LrpkitError) else LrpkitError(text)
