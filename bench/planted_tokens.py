"""Text with known evidence: a tiny transformer classifier trained on synthetic sequences whose label is decided by
a few planted tokens among distractors; how often each method's top-k tokens are the planted ones.

Sequences of 32 tokens over a vocabulary of 64: tokens 16..63 are distractors, drawn uniformly; each sequence
carries 3 planted tokens at random positions, all from its class's set (class 0: tokens 2-5, class 1: 6-9, class 2:
10-13), and 2 "decoys" from tokens 14-15, which appear in every class. The model: token and position embeddings, two
pre-LN encoder blocks (``nn.MultiheadAttention``, 4 heads, width 32), a final LayerNorm and a linear head on the mean
over the tokens, or on a class token put in front (both are measured); trained with Adam here in about 30 s of CPU.
For each of 500 test sequences and its true class: the share of the 3 most relevant tokens that are planted ones
(top-3 accuracy), averaged. Acceptance (issue): >= 0.9 for ``attnlrp``.

    python bench/planted_tokens.py [--steps 600] [--n 500] [--threads 1] [--no-write]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _report
import lrpkit
from _bias import with_bias

VOCAB, LENGTH, PLANTED, DECOYS, CLASSES = 64, 32, 3, 2, 3


def sample(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token ids ``(n, LENGTH)``, labels ``(n,)`` and a mask of the planted positions ``(n, LENGTH)``."""
    ids = torch.randint(16, VOCAB, (n, LENGTH), generator=generator)
    labels = torch.randint(0, CLASSES, (n,), generator=generator)
    planted = torch.zeros(n, LENGTH, dtype=torch.bool)
    for k in range(n):
        spots = torch.randperm(LENGTH, generator=generator)[: PLANTED + DECOYS]
        ids[k, spots[:PLANTED]] = 2 + 4 * labels[k] + torch.randint(0, 4, (PLANTED,), generator=generator)
        ids[k, spots[PLANTED:]] = torch.randint(14, 16, (DECOYS,), generator=generator)
        planted[k, spots[:PLANTED]] = True
    return ids, labels, planted


class Block(nn.Module):
    def __init__(self, dim: int, heads: int) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fc1, self.fc2 = nn.Linear(dim, 2 * dim), nn.Linear(2 * dim, dim)

    def forward(self, x):
        y = self.ln1(x)
        x = x + self.attention(y, y, y, need_weights=False)[0]
        return x + self.fc2(F.gelu(self.fc1(self.ln2(x))))


class Classifier(nn.Module):
    """Token and position embeddings, two pre-LN blocks, a final LayerNorm and a linear head on the mean over the
    tokens (``pooling="mean"``) or on a learned class token put in front (``"cls"``, as BERT classifies)."""

    def __init__(self, dim: int = 32, heads: int = 4, pooling: str = "mean") -> None:
        super().__init__()
        self.pooling = pooling
        self.embed = nn.Embedding(VOCAB, dim)
        self.position = nn.Parameter(torch.randn(LENGTH, dim) * 0.1)
        self.token = nn.Parameter(torch.randn(1, 1, dim) * 0.1)
        self.blocks = nn.Sequential(Block(dim, heads), Block(dim, heads))
        self.ln, self.head = nn.LayerNorm(dim), nn.Linear(dim, CLASSES)

    def forward(self, input_ids=None, inputs_embeds=None):
        x = (self.embed(input_ids) if inputs_embeds is None else inputs_embeds) + self.position
        if self.pooling == "cls":
            x = torch.cat([self.token.expand(x.shape[0], -1, -1), x], 1)
        y = self.ln(self.blocks(x))
        return self.head(y[:, 0] if self.pooling == "cls" else y.mean(1))


def train(steps: int, seed: int = 0, pooling: str = "mean") -> tuple[Classifier, float]:
    torch.manual_seed(seed)
    model, generator = Classifier(pooling=pooling), torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    start = time.perf_counter()
    for _ in range(steps):
        ids, labels, _ = sample(64, generator)
        loss = F.cross_entropy(model(ids), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval(), time.perf_counter() - start


def gradient(model: Classifier, ids: torch.Tensor, labels: torch.Tensor, times_input: bool) -> torch.Tensor:
    embeds = model.embed(ids).detach().requires_grad_()
    (grad,) = torch.autograd.grad(model(inputs_embeds=embeds).gather(1, labels[:, None]).sum(), embeds)
    return (grad * embeds).sum(-1) if times_input else grad.norm(dim=-1)


def integrated_gradients(model: Classifier, ids: torch.Tensor, labels: torch.Tensor, steps: int = 32) -> torch.Tensor:
    """Integrated gradients on the token embeddings from a zero baseline (midpoint rule), summed per token."""
    embeds = model.embed(ids).detach()
    total = torch.zeros_like(embeds)
    for k in range(steps):
        point = (embeds * (k + 0.5) / steps).requires_grad_()
        (grad,) = torch.autograd.grad(model(inputs_embeds=point).gather(1, labels[:, None]).sum(), point)
        total += grad
    return (total / steps * embeds).sum(-1)


def relevance(method: str, model: Classifier, ids: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    if method in ("attnlrp", "cp_lrp"):
        return lrpkit.lrp(model, ids, labels, method)
    if method.endswith(", bias=True"):
        return lrpkit.lrp(model, ids, labels, with_bias(method.split(",")[0]))
    if method == "gradient x input":
        return gradient(model, ids, labels, True)
    if method == "gradient magnitude":
        return gradient(model, ids, labels, False)
    if method == "integrated gradients":
        return integrated_gradients(model, ids, labels)
    return torch.rand(ids.shape, generator=torch.Generator().manual_seed(3))


def top_k_accuracy(R: torch.Tensor, planted: torch.Tensor) -> float:
    top = R.topk(PLANTED, dim=1).indices
    return float(planted.gather(1, top).float().mean())


METHODS = (
    "attnlrp",
    "cp_lrp",
    "attnlrp, bias=True",
    "cp_lrp, bias=True",
    "gradient x input",
    "integrated gradients",
    "gradient magnitude",
    "random",
)
POOLINGS = ("mean", "cls")


def measure(pooling: str, steps: int, n: int) -> tuple[dict[str, float], float, float]:
    """Top-3 accuracy per method, test accuracy and training seconds of one model."""
    model, seconds = train(steps, pooling=pooling)
    ids, labels, planted = sample(n, torch.Generator().manual_seed(123))
    with torch.no_grad():
        accuracy = float((model(ids).argmax(1) == labels).float().mean())
    rates = {m: top_k_accuracy(relevance(m, model, ids, labels), planted) for m in METHODS}
    return rates, accuracy, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = _report.load_average()
    runs = {pooling: measure(pooling, args.steps, args.n) for pooling in POOLINGS}
    rows = [f"| {m} | " + " | ".join(f"{runs[p][0][m]:.3f}" for p in POOLINGS) + " |" for m in METHODS]
    trained = "; ".join(f"{p}: {runs[p][2]:.0f} s, test accuracy {runs[p][1]:.3f}" for p in POOLINGS)
    text = "\n".join([
        "## Planted tokens: top-3 accuracy (bench/planted_tokens.py)", "",
        f"Two 2-block transformer classifiers (width 32, 4 heads), one reading the mean over the tokens, one a class "
        f"token in front (as BERT), each trained for {args.steps} steps ({trained} on {args.n} new sequences) on "
        f"synthetic sequences of {LENGTH} tokens whose class is decided by {PLANTED} planted tokens among "
        f"distractors and {DECOYS} decoys present in every class. Share of each sequence's 3 most relevant tokens "
        "(true class) that are planted ones (acceptance: >= 0.9 for attnlrp; chance: 3/32 = 0.094). The presets "
        "keep the biases of Linear layers in the denominators (their share dropped, as LXT); `, bias=True`: also "
        "the biases of LayerNorms and sums, their shares dropped.", "",
        *_report.environment(torch.device("cpu")),
        f"- load average before: {load}; after: {_report.load_average()}", "",
        "| method | mean pooling | class token |", "|---|---|---|", *rows,
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        _report.update_section("planted-tokens", text)


if __name__ == "__main__":
    main()
