"""A 1B-parameter LLaMA-style model explained on CPU in bfloat16: peak memory and time against a plain gradient.

The configuration is Llama 3.2 1B's shape (hidden 2048, 16 layers, 32 heads, 8 key/value heads, MLP 8192, a
vocabulary of 128,256, tied embeddings: 1.24 billion parameters) with random weights, built directly in bfloat16;
one sequence of ``--tokens`` tokens (default 512); the explained logit: the predicted next token at the last
position; ``lrpkit.lrp(model, input_ids, Logit(..., position=-1), "attnlrp")`` (relevance accumulated in float32).

Jobs, in one process, in rounds: lrpkit's AttnLRP (the first call's capture with ``torch.export`` reported
apart) and the plain input gradient ``d logit / d embeddings`` (autograd, weights frozen) of the logit AttnLRP
explained. On a CPU without bfloat16 instructions a bfloat16 pass of this model over 512 tokens takes minutes: one
round is the default. Peak memory: the process's resident memory before the model exists, with the model, and how
far one call of each job raises the peak above what was in use before it (``/proc/self/clear_refs``).

    python bench/transformer_large.py [--tokens 512] [--rounds 1] [--threads 1] [--no-gradient] [--no-write]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hf
import _report
import lrpkit
from lrpkit.engine import walk

LLAMA_1B = {
    "hidden_size": 2048,
    "intermediate_size": 8192,
    "num_hidden_layers": 16,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "vocab_size": 128256,
    "max_position_embeddings": 4096,
    "tie_word_embeddings": True,
    "rope_theta": 500000.0,
}


def rss_gib(field: str = "VmRSS") -> float:
    return _hf._status_kib(field) / 2**20


def build(tokens: int):
    import transformers as hf

    config = hf.LlamaConfig(**LLAMA_1B)
    torch.manual_seed(0)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)  # the weights are made in bfloat16, never in float32
    try:
        model = hf.LlamaForCausalLM(config)
    finally:
        torch.set_default_dtype(previous)
    model.config.use_cache = False
    model = model.to(torch.bfloat16).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    ids = torch.randint(0, LLAMA_1B["vocab_size"], (1, tokens), generator=torch.Generator().manual_seed(0))
    return model, ids


def gradient(model, ids, target):
    """``d logit / d embeddings`` at the last position (autograd, bfloat16 as the model); ``target``: a token id."""
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    return torch.autograd.grad(logits[0, -1, target].sum(), embeds)[0]


def timed(call) -> tuple[float, float]:
    """Seconds and the peak resident memory (GiB) one call adds above what was in use before it."""
    gc.collect()
    start = time.perf_counter()
    peak = _hf.peak_mib(call) / 1024
    return time.perf_counter() - start, peak


def measure(args: argparse.Namespace) -> dict:
    found: dict = {"rss before model GiB": rss_gib()}
    start = time.perf_counter()
    model, ids = build(args.tokens)
    found["build s"] = time.perf_counter() - start
    found["parameters"] = sum(p.numel() for p in model.parameters())
    found["rss with model GiB"] = rss_gib()
    logit = lrpkit.Logit("pred", position=-1)
    results: list = []

    def explain() -> None:
        results.clear()  # the previous result's memory is released before the next call
        results.append(walk.explain(model, ids, logit, "attnlrp", position="input_ids"))

    times: dict[str, list[float]] = {"gradient": [], "attnlrp": []}
    peaks: dict[str, list[float]] = {"gradient": [], "attnlrp": []}
    highest = rss_gib("VmHWM")
    for k in range(args.rounds):
        seconds, peak = timed(explain)
        if k == 0:  # the first call captures the model with torch.export: its time apart
            found["capture s"] = results[0].prepared.seconds
            seconds -= found["capture s"]
            target = results[0].output[0, -1].argmax()
        times["attnlrp"].append(seconds)
        peaks["attnlrp"].append(peak)
        highest = max(highest, rss_gib("VmHWM"))  # the peak since the call began (each call resets it)
        print(f"round {k + 1}: attnlrp {seconds:.1f} s, +{peak:.2f} GiB", flush=True)
        if args.no_gradient:
            continue
        seconds, peak = timed(lambda t=target: gradient(model, ids, t))
        times["gradient"].append(seconds)
        peaks["gradient"].append(peak)
        highest = max(highest, rss_gib("VmHWM"))
        print(f"round {k + 1}: gradient {seconds:.1f} s, +{peak:.2f} GiB", flush=True)
    R = results[0].heatmap(tuple(ids.shape))
    found["relevance"] = f"{tuple(R.shape)} {R.dtype}, finite: {bool(torch.isfinite(R).all())}"
    for job in times:
        found[f"{job} s"] = statistics.median(times[job]) if times[job] else None
        found[f"{job} peak GiB"] = max(peaks[job]) if peaks[job] else None
    found["process peak GiB"] = highest
    return found


def report(found: dict, args: argparse.Namespace, before: str, memory: str) -> str:
    if found["gradient s"] is None:  # --no-gradient
        gradient, ratio = "| plain input gradient | not run (`--no-gradient`) | | |", ""
    else:
        gradient = f"| plain input gradient | {found['gradient s']:.1f} | 1.00 | {found['gradient peak GiB']:.2f} |"
        ratio = f"{found['attnlrp s'] / found['gradient s']:.2f}"
    rows = [
        "| | seconds | ÷ gradient | peak memory above the model (GiB) |",
        "|---|---|---|---|",
        gradient,
        f"| lrpkit AttnLRP | {found['attnlrp s']:.1f} | {ratio} | {found['attnlrp peak GiB']:.2f} |",
        f"| capture (`torch.export`, first call only) | {found['capture s']:.1f} | | |",
    ]
    return "\n".join([
        "## A 1B-parameter LLaMA on CPU in bfloat16 (bench/transformer_large.py)", "",
        f"Llama 3.2 1B's shape ({found['parameters'] / 1e9:.2f} B parameters, random weights, bfloat16), "
        f"1 x {args.tokens} tokens, the predicted next token at the last position, `attnlrp` (relevance in float32); "
        f"times: medians of {args.rounds} round(s), AttnLRP then the gradient; the first AttnLRP call's capture "
        "time is shown apart (the capture is cached per model and input shape).", "",
        *_report.environment(torch.device("cpu")),
        f"- transformers {_report.version('transformers')}; memory: {memory}",
        f"- load average before: {before}; after: {_report.load_average()}", "",
        f"- resident memory: {found['rss before model GiB']:.2f} GiB before the model, "
        f"{found['rss with model GiB']:.2f} GiB with it; the process's peak: {found['process peak GiB']:.2f} GiB",
        f"- relevance: {found['relevance']}", "",
        *rows,
    ])  # fmt: skip


def _memory_line() -> str:
    with open("/proc/meminfo") as f:
        info = {line.split(":")[0]: int(line.split()[1]) for line in f}
    return f"{info['MemTotal'] / 2**20:.0f} GiB total, {info['MemAvailable'] / 2**20:.0f} GiB available at the start"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-gradient", action="store_true", help="AttnLRP only (a bfloat16 gradient can take hours)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    if os.environ.get("MALLOC_MMAP_THRESHOLD_") is None:  # freed memory returns to the system between the jobs
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **_hf.MALLOC_FIXED})
    torch.set_num_threads(args.threads)
    before = _report.load_average()
    memory = _memory_line()
    found = measure(args)
    text = report(found, args, before, memory)
    print(text)
    if not args.no_write:
        _report.update_section("transformer-large-cpu" + ("" if args.tokens == 512 else f"-{args.tokens}"), text)


if __name__ == "__main__":
    main()
