"""Commands on whole datasets: explain-dataset, export-h5."""

from __future__ import annotations

import argparse
from typing import Any

from ..errors import SpecError
from .common import method_help, parse_method


def add_explain_dataset(sub: Any) -> None:
    p = sub.add_parser("explain-dataset", help="explain every sample of a dataset into a chunked zarr store")
    p.add_argument("model", metavar="MODEL")
    p.add_argument("--data", default="mnist", metavar="SOURCE", help="mnist (embedded), an IDX directory, a .npy file, "
                   "a zarr array or an image folder (one subfolder per class) (default: mnist)")  # fmt: skip
    p.add_argument("--out", required=True, metavar="STORE", help="zarr store to write (or resume)")
    p.add_argument("--method", default="epsilon_plus", help=f"the LRP method: {method_help()}")
    p.add_argument("--target", default="true", help="true, pred, all, or a class K (default: true)")
    p.add_argument("--batch-size", type=int, default=256, help="samples per chunk and per batch (default: 256)")
    p.add_argument("--workers", type=int, help="run on Ray with this many workers (pip install 'lrpkit[ray]')")
    p.add_argument("--address", help="the Ray cluster to join: auto or HOST:PORT")
    p.add_argument("--threads", type=int, help="torch threads (in-process: default all; per Ray worker: default 1)")
    p.add_argument("--dtype", choices=["float32", "float16"], default="float32", help="relevance dtype in the store")
    p.add_argument("--compression", choices=["zstd", "none"], default="zstd", help="zstd (byte-shuffled) or none")
    p.add_argument("--split", choices=["test", "train"], default="test", help="MNIST split (default: test)")
    p.add_argument("--labels", metavar="FILE", help="labels (.npy or zarr, N ints) for a .npy or zarr source")
    p.add_argument("--image-size", type=int, nargs="+", metavar="PIXELS", help="resize images to H W (or one size)")
    p.add_argument("--channels", type=int, choices=[1, 3], help="image channels (default: the model's, else 3)")
    p.add_argument("--mean", type=float, nargs="+", help="per-channel mean subtracted after scaling to [0, 1]")
    p.add_argument("--std", type=float, nargs="+", help="per-channel std divided by after subtracting the mean")
    p.add_argument("--skip-bad", action="store_true", help="leave unreadable images out (listed in the store)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def run_explain_dataset(args: argparse.Namespace) -> None:
    from ..jobs.run import explain_dataset
    from ..model.io import load

    net = load(args.model)
    source_options = {"split": args.split, "labels": args.labels, "preprocess": _preprocess(args, net),
                      "skip_bad": args.skip_bad, "progress": not args.quiet}  # fmt: skip
    store = explain_dataset(
        args.model if args.workers or args.address else net, args.data, args.out, method=parse_method(args.method),
        target=_target(args.target), batch_size=args.batch_size, workers=args.workers, address=args.address,
        dtype=args.dtype, compression=args.compression, threads=args.threads, progress=not args.quiet,
        source_options=source_options,
    )  # fmt: skip
    print(store)
    for bad in store.attrs.get("skipped") or []:
        print(f"skipped {bad['file']}: {bad['error']}")


def _target(text: str) -> Any:
    return int(text) if text.lstrip("-").isdigit() else text


def _preprocess(args: argparse.Namespace, net: Any) -> Any:
    from ..jobs.images import Preprocess

    size = args.image_size
    if size is not None and len(size) not in (1, 2):
        raise SpecError(f"--image-size takes H W or one size, got {size}")
    shape = getattr(net, "input_shape", None)
    if size is None and shape is not None and len(shape) == 3:
        size = shape[1:]
    channels = args.channels or (shape[0] if shape is not None and len(shape) == 3 else 3)
    size = None if size is None else (size[0], size[-1])
    return Preprocess(size, channels, tuple(args.mean) if args.mean else None, tuple(args.std) if args.std else None)


def add_export_h5(sub: Any) -> None:
    p = sub.add_parser("export-h5", help="write a store as ViRelAy's attribution HDF5 file")
    p.add_argument("store", metavar="STORE")
    p.add_argument("out", metavar="OUT.h5")
    p.add_argument("--class", dest="class_index", type=int, help="the class to export from a target 'all' store")


def run_export_h5(args: argparse.Namespace) -> None:
    from ..jobs.export import export_h5

    print(export_h5(args.store, args.out, args.class_index))


COMMANDS = {
    "explain-dataset": (add_explain_dataset, run_explain_dataset),
    "export-h5": (add_export_h5, run_export_h5),
}
