"""Token pictures: train the tiny planted-token classifier of ``bench/planted_tokens.py`` (imported from there;
about a minute on one idle core), explain test sequences with AttnLRP and draw them as HTML and PNG.

    python examples/token_pictures.py [--steps 600] [--count 8] [--out out/tokens]

Each sequence's class is decided by its 3 planted tokens (shown as ``KEY<id>``, ``[...]`` around them here only
to find them in the picture) among filler words ``w<id>`` and two decoys ``DECOY<id>`` that every class has. One
line per sequence, each scaled by its own largest ``|R|``; red: evidence for the true class, blue: against. Writes
``OUT/planted.html`` and ``OUT/planted.png``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

import lrpkit

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from planted_tokens import sample, train  # the bench's task and model


def word(token: int, planted: bool) -> str:
    if planted:
        return f" [KEY{token}]"
    return f" DECOY{token}" if token in (14, 15) else f" w{token}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--count", type=int, default=8)
    parser.add_argument("--out", type=Path, default=Path("out/tokens"))
    args = parser.parse_args()
    model, seconds = train(args.steps)
    print(f"trained for {args.steps} steps in {seconds:.0f} s")
    ids, labels, planted = sample(args.count, torch.Generator().manual_seed(7))
    relevance = lrpkit.lrp(model, ids, labels, "attnlrp")  # (count, tokens): one score per token
    tokens, scores = [], []
    for k in range(args.count):
        words = [word(int(t), bool(p)) for t, p in zip(ids[k], planted[k], strict=True)]
        tokens += [f"class {int(labels[k])}:", *words, "\n"]
        scores += [0.0, *(relevance[k] / relevance[k].abs().max()).tolist(), 0.0]
    title = "AttnLRP on the planted-token classifier (true class)"
    print(lrpkit.write_tokens_html(tokens, scores, args.out / "planted.html", title=title))
    print(lrpkit.write_tokens_png(tokens, scores, args.out / "planted.png", width=1400, size=15))


if __name__ == "__main__":
    main()
