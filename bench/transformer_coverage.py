"""Which attention models lrpkit explains: torchvision's vit_b_16 and swin_t, and tiny random Hugging Face LLaMA,
Qwen2, GPT-2 (eager and sdpa attention) and BERT -- whether it runs, how far CP-LRP is from conservation, and the
time of AttnLRP / CP-LRP divided by a plain input gradient.

- Runs: ``lrpkit.lrp(model, x, target, "cp_lrp")`` and ``"attnlrp"`` return finite relevance (capture time apart).
- Conservation: float64, biases zeroed, stabilisers 1e-12: ``|sum R - logit| / |logit|`` at the input embeddings
  (token models), the pixels (swin_t) or the token sequence after the class token joins it (vit_b_16: the class
  token is a constant, so its slice of relevance stops there and the pixels hold less than the logit by definition).
- Time: float32, one thread; medians of ``--rounds`` rounds after a warm-up, each round running the gradient, AttnLRP
  and CP-LRP once in turn; the gradient is ``d logit / d input`` (embeddings for token models).

Run it once per transformers release (bench/README.md): each writes its own section of RESULTS.md.

    python bench/transformer_coverage.py [--rounds 5] [--no-vision] [--no-write]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hf
import _report
import lrpkit
from lrpkit.rules import Conservative, Epsilon, Proportional

EXACT_CP = {
    "linear": Epsilon(1e-12),
    "conv": Epsilon(1e-12),
    "matmul": Conservative(1e-12),
    "product": Conservative(),
    "sum": Proportional(1e-12),
    "norm": Epsilon(1e-12),
}
LANGUAGE = [("llama", "eager"), ("llama", "sdpa"), ("qwen2", "eager"), ("qwen2", "sdpa"), ("gpt2", "eager"),
            ("gpt2", "sdpa"), ("bert", "eager"), ("bert", "sdpa")]  # fmt: skip


class Case:
    """One model: how to build it in a dtype, its input, the explained target, and its gradient baseline."""

    def __init__(self, name: str, attention: str = "") -> None:
        self.name, self.attention = name, attention
        self.vision = name in ("vit_b_16", "swin_t")

    def model(self, dtype: torch.dtype) -> torch.nn.Module:
        if not self.vision:
            return _hf.make(self.name, self.attention, dtype)
        import torchvision

        torch.manual_seed(0)
        model = getattr(torchvision.models, self.name)()
        head = model.heads.head if self.name == "vit_b_16" else model.head
        torch.nn.init.normal_(head.weight, std=0.02)  # torchvision's ViT head starts at zero
        return model.to(dtype).eval()

    def input(self, dtype: torch.dtype) -> torch.Tensor:
        generator = torch.Generator().manual_seed(1)
        if self.vision:
            return torch.randn(1, 3, 224, 224, generator=generator).to(dtype)
        return torch.randint(0, _hf.VOCAB, (2, 32), generator=generator)

    def target(self, model, x):
        with torch.no_grad():
            out = model(x) if self.vision else model(input_ids=x).logits
        if out.dim() == 3:
            picked = out[:, -1].argmax(-1)
            return lrpkit.Logit(picked, position=-1), out[torch.arange(len(x)), -1, picked]
        return out.argmax(1), out.max(1).values

    def gradient(self, model, x, target):
        """``d logit / d input`` (at the embeddings for token ids)."""
        for p in model.parameters():
            p.requires_grad_(False)
        if self.vision:
            x = x.clone().requires_grad_()
            out, wrt = model(x), x
        else:
            wrt = model.get_input_embeddings()(x).detach().requires_grad_()
            out = model(inputs_embeds=wrt).logits
        picked = target.filter(out.detach()) if isinstance(target, lrpkit.Logit) else None
        value = (out * picked).sum() if picked is not None else out.gather(1, target[:, None]).sum()
        return torch.autograd.grad(value, wrt)[0]


def conservation(case: Case) -> float:
    """``|sum R - logit| / |logit|`` at the input embeddings, the worst sample (CP-LRP, float64, biases zeroed)."""
    model = _hf.zero_biases(case.model(torch.float64))
    x = case.input(torch.float64)
    target, logit = case.target(model, x)
    options = {} if case.vision else {"position": "input_ids"}
    R = lrpkit.layerwise_lrp(model, x, target, EXACT_CP, **options)
    # vit_b_16: the class token joins the patch embeddings by a concatenation; it is a constant, so the sequence
    # (that node), not the pixels, holds the whole logit
    at = next(n for n in R if n.startswith("cat")) if case.name == "vit_b_16" else next(iter(R))
    return float(((R[at].reshape(len(x), -1).sum(1) - logit).abs() / logit.abs()).max())


def median_ms(calls: dict[str, object], rounds: int) -> dict[str, float]:
    """Median milliseconds of each call: one warm-up, then rounds in which every call runs once, in turn (so that
    the machine's background load hits them alike)."""
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(rounds):
        for name, call in calls.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}


def speed(case: Case, rounds: int) -> dict:
    model = case.model(torch.float32)
    x = case.input(torch.float32)
    target, _ = case.target(model, x)
    options = {} if case.vision else {"position": "input_ids"}
    start = time.perf_counter()
    R = lrpkit.lrp(model, x, target, "cp_lrp", **options)
    capture = time.perf_counter() - start
    finite = bool(torch.isfinite(R).all())
    finite = finite and bool(torch.isfinite(lrpkit.lrp(model, x, target, "attnlrp", **options)).all())
    found = {"capture s": capture, "finite": finite}
    calls = {"gradient": lambda: case.gradient(model, x, target)}
    for method in ("attnlrp", "cp_lrp"):
        calls[method] = lambda m=method: lrpkit.lrp(model, x, target, m, **options)
    found.update({f"{name} ms": ms for name, ms in median_ms(calls, rounds).items()})
    return found


def run(case: Case, rounds: int) -> dict:
    label = {"vit_b_16": "MultiheadAttention", "swin_t": "shifted windows"}.get(case.name, case.attention)
    row = {"model": case.name, "attention": label}
    try:
        row.update(speed(case, rounds))
        row["conservation"] = conservation(case)
    except Exception as err:  # a row per model, whatever fails
        row["error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | attention | runs | CP-LRP conservation error | AttnLRP ÷ gradient | CP-LRP ÷ gradient | "
             "gradient ms | capture s |", "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['attention']} | ✗ {r['error']} | | | | | |")
            continue
        g = r["gradient ms"]
        lines.append(f"| {r['model']} | {r['attention']} | {'✓' if r['finite'] else '✗ non-finite'} | "
                     f"{r['conservation']:.1e} | {r['attnlrp ms'] / g:.2f} | {r['cp_lrp ms'] / g:.2f} | {g:.1f} | "
                     f"{r['capture s']:.1f} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-vision", action="store_true", help="leave out vit_b_16 and swin_t")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cases = [Case(f, a) for f, a in LANGUAGE] + ([] if args.no_vision else [Case("vit_b_16"), Case("swin_t")])
    before = _report.load_average()
    rows = []
    for case in cases:
        rows.append(run(case, args.rounds))
        print(rows[-1], flush=True)
    version = _report.version("transformers")
    text = "\n".join([
        f"## Transformer coverage, transformers {version} (bench/transformer_coverage.py)", "",
        "Random weights; token models: tiny configurations (hidden 64, 2 layers, 4 heads), 2 x 32 tokens, the "
        "predicted next token at the last position (BERT: the predicted class); vision models: 1 x 3 x 224 x 224. "
        "Conservation: float64, biases zeroed, CP-LRP with stabilisers 1e-12, at the input embeddings (pixels "
        "for vision models). Times: float32, 1 thread, medians after a warm-up.", "",
        *_report.environment(torch.device("cpu")),
        f"- transformers {version}; torchvision {_report.version('torchvision')}",
        f"- load average before: {before}; after: {_report.load_average()}", "",
        table(rows),
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        _report.update_section(f"transformer-coverage-{version}", text)


if __name__ == "__main__":
    main()
