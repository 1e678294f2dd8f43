"""Speed and peak memory of AttnLRP / CP-LRP on a GPT-2-like model: lrpkit against a plain input gradient and LXT.

The model: Hugging Face GPT-2 (eager attention) with 4 layers, hidden 256, 4 heads, a vocabulary of 1000 (so that
the blocks, not the LM head, carry the cost), random weights, float32, one sequence of 128 tokens; the explained
logit: the predicted next token at the last position. Every job runs in its own process (LXT patches transformers'
classes process-wide): one warm-up, then ``--rounds`` timed calls (median), then the peak memory of one more call
above what was in use before it (as bench/speed.py measures it). Runs in the LXT bench environment.

    python bench/transformer_speed.py [--threads 1] [--rounds 10] [--device cpu] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hf  # noqa: E402
import _report  # noqa: E402

import lrpkit  # noqa: E402

JOBS = ("forward", "gradient", "lrpkit attnlrp", "lrpkit cp_lrp", "LXT attnlrp", "LXT cp")
CONFIG = {"n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 1000}


def build(device: torch.device):
    model = _hf.make("gpt2", "eager", torch.float32, **CONFIG).to(device)
    ids = torch.randint(0, 1000, (1, 128), generator=torch.Generator().manual_seed(0)).to(device)
    with torch.no_grad():
        target = model(input_ids=ids).logits[:, -1].argmax(-1)
    return model, ids, target


def call_of(job: str, model, ids, target):
    """The job as a function of no arguments."""
    if job == "forward":
        return lambda: _inference(model, ids)
    if job.startswith("lrpkit"):
        method = job.split()[1]
        return lambda: lrpkit.lrp(model, ids, lrpkit.Logit(target, position=-1), method, position="input_ids")
    if job.startswith("LXT"):
        from lxt.efficient import monkey_patch
        from lxt.efficient.models import gpt2
        from transformers.models.gpt2 import modeling_gpt2

        monkey_patch(modeling_gpt2, gpt2.cp_LRP if job.endswith("cp") else gpt2.attnLRP)
    for p in model.parameters():
        p.requires_grad_(False)
    return lambda: _gradient_x_input(model, ids, target)


def _inference(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits


def _gradient_x_input(model, ids, target):
    """The input gradient at the embeddings (LXT: its relevance, gradient x input, summed per token)."""
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    (grad,) = torch.autograd.grad(logits[0, -1, target].sum(), embeds)
    return (grad * embeds).sum(-1)


def one(job: str, rounds: int, device: torch.device) -> dict:
    model, ids, target = build(device)
    call = call_of(job, model, ids, target)
    call()  # warm-up (lrpkit: the capture, cached afterwards)
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        call()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        call()
        peak = (torch.cuda.max_memory_allocated(device) - before) / 2**20
    else:
        peak = _hf.peak_mib(call)
    return {"job": job, "ms": 1000 * statistics.median(times), "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help="one job (a subprocess)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.one:
        print(json.dumps(one(args.one, args.rounds, device)))
        return
    before = _report.load_average()
    rows = {}
    for job in JOBS:
        command = [sys.executable, __file__, "--one", job, "--threads", str(args.threads), "--rounds",
                   str(args.rounds), "--device", args.device]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, env={**os.environ, **_hf.MALLOC_FIXED})
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        rows[job] = json.loads(lines[-1]) if lines else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}
        print(job, rows[job], flush=True)
    text = report(rows, args, device, before)
    print(text)
    if not args.no_write:
        _report.update_section(f"transformer-speed-{device.type}", text)


def report(rows: dict, args: argparse.Namespace, device: torch.device, before: str) -> str:
    gradient = rows["gradient"].get("ms")
    lines = ["| job | ms | ÷ gradient | peak MiB |", "|---|---|---|---|"]
    for job, r in rows.items():
        if "error" in r:
            lines.append(f"| {job} | failed: {r['error'][:150]} | | |")
            continue
        ratio = f"{r['ms'] / gradient:.2f}" if gradient else ""
        lines.append(f"| {job} | {r['ms']:.1f} | {ratio} | {r['peak_mib']:.1f} |")
    return "\n".join([
        f"## Transformer speed on {device.type} (bench/transformer_speed.py)", "",
        f"GPT-2 (eager attention), {CONFIG['n_layer']} layers, hidden {CONFIG['n_embd']}, {CONFIG['n_head']} heads, "
        f"vocabulary {CONFIG['vocab_size']}, 1 x 128 tokens, float32; medians of {args.rounds} calls after a warm-up, "
        "each job in its own process. Gradient: the input gradient at the embeddings (what LXT computes).", "",
        *_report.environment(device),
        f"- transformers {_report.version('transformers')}, lxt {_report.version('lxt')}",
        f"- load average before: {before}; after: {_report.load_average()}", "",
        *lines,
    ])  # fmt: skip


if __name__ == "__main__":
    main()
