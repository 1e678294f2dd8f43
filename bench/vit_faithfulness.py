"""Faithfulness on the MNIST ViT: pixel flipping / AOPC of AttnLRP, CP-LRP, their gamma ViT variants, gradient x
input, integrated gradients and random, as ``lrpkit evaluate-methods`` measures it; is AttnLRP ahead?

    python bench/vit_faithfulness.py [--model DIR] [--n 500] [--steps 100] [--region 1] [--threads 1] [--no-write]

The model: ``--model DIR`` (a saved ``lrpkit.vit()``), else ``lrpkit.vit()`` trained here with its recipe
(``lrpkit.train.RECIPES["vit"]``) on the embedded 4000 training images and saved to ``out/bench/vit``, reused by the
next run (``bench/accuracy.py --models vit --save out/bench`` writes the same place). Images: a seeded random subset
of the real 10,000 MNIST test images (``--data``; the embedded 1000 where those are absent), target the predicted
class, MoRF order, uniform noise fill, every pixel over ``--steps`` steps: the defaults of ``evaluate-methods``.
Besides its AOPC table, each method's paired per-sample difference to ``attnlrp`` (same images, same noise) with a
95 % interval. The report (HTML, curves, heatmaps) goes to ``--out``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
import lrpkit
from _bias import with_bias
from lrpkit.evaluate import Comparison, compare, mean_interval
from lrpkit.evaluate.report import markdown_table, reference_method, rows, write_report
from lrpkit.model.data import mnist
from lrpkit.model.train import RECIPES

ROOT = Path(__file__).resolve().parents[1]
T10K = ROOT.parent / "shared" / "data" / "mnist-t10k"
FORMAT = ("body.0",)  # the Format layer (2 x - 1): part of the input, as LXT's models get it normalised
METHODS = {
    **{name: name for name in ("attnlrp", "cp_lrp", "attnlrp_vit", "cp_lrp_vit")},
    "attnlrp, bias=True": with_bias("attnlrp", keep=FORMAT),
    "attnlrp_vit, bias=True": with_bias("attnlrp_vit", keep=FORMAT),
    **{name: name for name in ("gradxinput", "integrated_gradients", "random")},
}


def model(path: Path | None, cache: Path) -> tuple[lrpkit.Network, str]:
    """The ViT to explain and a line saying where it came from."""
    if path is not None:
        return lrpkit.load(path), f"loaded from {path}"
    if (cache / "model.json").is_file():
        net = lrpkit.load(cache)
        steps, accuracy = net.metadata.get("steps"), net.metadata.get("test_accuracy_10k")
        return net, f"loaded from {cache}: {steps} steps, 10,000-image accuracy {accuracy} when saved"
    net, start = lrpkit.vit(), time.perf_counter()
    net.fit(mnist().train, progress=False, **RECIPES["vit"])
    net.save(cache)
    return net, f"trained here with RECIPES['vit'] in {time.perf_counter() - start:.0f} s, saved to {cache}"


def faithfulness(net, test, args) -> tuple[Comparison, dict[str, Path]]:
    """Pixel flipping of every method on a seeded subset of ``test``, as ``evaluate-methods`` picks and runs it."""
    pick = torch.randperm(len(test.labels), generator=torch.Generator().manual_seed(0))[: args.n]
    images = test.images[pick]
    found = compare(net, images, "pred", list(METHODS.values()), steps=args.steps, region=args.region, seed=0)
    named = [
        dict(zip(METHODS, part.values(), strict=True)) for part in (found.results, found.relevances, found.seconds)
    ]
    comparison = Comparison(*named)
    details = {"samples": args.n, "target": "pred", "steps": args.steps, "region": args.region, "fill": "uniform"}
    return comparison, write_report(args.out, comparison, images, details=details)


def against(comparison, name: str) -> list[str]:
    """Markdown rows: ``name``'s AOPC minus each other method's, per sample, mean and 95 % interval."""
    base = comparison.results[name].per_sample_aopc
    lines = [f"| method | `{name}` - method [95 %] | `{name}` ahead? |", "|---|---|---|"]
    for other, result in comparison.results.items():
        if other == name:
            continue
        low, high = mean_interval(base - result.per_sample_aopc)
        verdict = "yes" if low > 0 else ("no (behind)" if high < 0 else "not separable")
        lines.append(f"| `{other}` | {float((base - result.per_sample_aopc).mean()):+.4f} [{low:+.4f}, {high:+.4f}] "
                     f"| {verdict} |")  # fmt: skip
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a saved lrpkit.vit() (default: train one, or reuse out/bench/vit)")
    parser.add_argument("--data", type=Path, default=T10K, help="MNIST IDX directory with the t10k files")
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--region", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, help="report directory (default: out/bench/vit-faithfulness[-regionR])")
    parser.add_argument("--no-write", action="store_true", help="print the section, leave RESULTS.md alone")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    suffix = f"-region{args.region}" if args.region > 1 else ""
    args.out = args.out or ROOT / "out" / "bench" / f"vit-faithfulness{suffix}"
    load = _report.load_average()
    net, origin = model(args.model, ROOT / "out" / "bench" / "vit")
    test = mnist(args.data).test if args.data.is_dir() else mnist().test
    accuracy = net.evaluate(test)["accuracy"]
    start = time.perf_counter()
    comparison, files = faithfulness(net, test, args)
    seconds = time.perf_counter() - start
    table = markdown_table(rows(comparison), reference_method(comparison.results))
    text = "\n".join([
        f"## Faithfulness on the MNIST ViT, {args.region}x{args.region} regions (bench/vit_faithfulness.py)", "",
        f"`lrpkit.vit()` ({origin}; accuracy {accuracy:.4f} on the {len(test)} test images used). Pixel flipping as "
        f"`lrpkit evaluate-methods`: {args.n} test images (seeded subset), the predicted class, most relevant first, "
        f"{args.region}x{args.region} regions replaced by uniform noise over {args.steps} steps; AOPC in logits "
        "(higher: the heatmap finds the evidence the model uses). `_vit`: gamma 0.25 on the convolutions (stem and "
        "patch embedding), 0.05 on Linear layers. The presets keep the biases of Linear-type layers in the "
        "denominators (their share dropped, as LXT); `, bias=True`: also the biases of LayerNorms and sums, "
        "as LXT computes (the Format layer's shift of the input to [-1, 1] excepted: LXT's models get normalised "
        f"inputs). All methods: {seconds:.0f} s.", "",
        *_report.environment(torch.device("cpu")),
        f"- load average before: {load}; after: {_report.load_average()}", "",
        table.rstrip(), "", "Paired per-sample differences to AttnLRP (same images, same noise):", "",
        *against(comparison, "attnlrp"), "",
        "The same for AttnLRP with the biases kept:", "", *against(comparison, "attnlrp, bias=True"),
    ])  # fmt: skip
    print(text)
    print("\n".join(str(path) for path in files.values()))
    if not args.no_write:
        _report.update_section(f"vit-faithfulness{suffix}", text)


if __name__ == "__main__":
    main()
