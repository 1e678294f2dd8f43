"""Speed and peak memory of AttnLRP / CP-LRP on a GPT-2-like model: lrpkit against a plain input gradient and LXT.

The model: Hugging Face GPT-2 (eager attention) with 4 layers, hidden 256, 4 heads, a vocabulary of 1000 (so that
the blocks, not the LM head, carry the cost), random weights, float32, one sequence of 128 tokens; the explained
logit: the predicted next token at the last position.

Every job lives in a process of its own (LXT patches transformers' classes process-wide), started once and warmed
up (lrpkit: the capture, cached afterwards). Then rounds: in each round every job runs one call, in turn, so that
the machine's background load hits all of them alike; the time of a job is its median over the rounds. Peak memory,
as bench/speed.py measures it: one fresh process per job, with glibc's malloc thresholds fixed so that freed memory
returns to the system, warmed up, then how far one more call raises the process's peak resident memory above what
was in use before it (not in the timed processes: fixed thresholds make every large allocation a fresh mapping,
which costs time). Runs in the LXT bench environment (bench/README.md).

    python bench/transformer_speed.py [--threads 1] [--rounds 15] [--device cpu] [--no-write]
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
import _hf
import _report
import lrpkit

JOBS = ("forward", "gradient", "lrpkit attnlrp", "lrpkit cp_lrp", "LXT attnlrp", "LXT cp")
CONFIG = {"n_embd": 256, "n_layer": 4, "n_head": 4, "vocab_size": 1000}
TARGETS = "AttnLRP ≤ 1.5x the gradient and not slower than LXT's AttnLRP; peak memory ≤ LXT's"


def build(device: torch.device):
    model = _hf.make("gpt2", "eager", torch.float32, **CONFIG).to(device)
    for p in model.parameters():
        p.requires_grad_(False)
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
        return lambda: _gradient_x_input(model, ids, target)
    return lambda: _gradient(model, ids, target)


def _inference(model, ids):
    with torch.inference_mode():
        return model(input_ids=ids).logits


def _gradient(model, ids, target):
    """The plain input gradient at the embeddings: ``d logit / d embeddings``."""
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    return torch.autograd.grad(logits[0, -1, target].sum(), embeds)[0]


def _gradient_x_input(model, ids, target):
    """LXT's relevance: gradient x input at the embeddings of the patched model, summed per token."""
    embeds = model.get_input_embeddings()(ids).detach()
    return (_gradient(model, ids, target) * embeds).sum(-1)


def worker(job: str, device: torch.device, memory: bool) -> None:
    """A job's process: builds, warms up, then answers ``time`` lines on stdin until ``quit``
    (``memory``: measures the peak once, prints it and exits)."""
    model, ids, target = build(device)
    call = call_of(job, model, ids, target)
    call()
    if memory:
        print(json.dumps({"mib": _peak(call, device)}), flush=True)
        return
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() == "time":
            start = time.perf_counter()
            call()
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            print(json.dumps({"s": time.perf_counter() - start}), flush=True)
        else:
            return


def _peak(call, device: torch.device) -> float:
    if device.type != "cuda":
        return _hf.peak_mib(call)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    call()
    return (torch.cuda.max_memory_allocated(device) - before) / 2**20


class Worker:
    """The parent's handle on one job's process."""

    def __init__(self, job: str, args: argparse.Namespace) -> None:
        self.job = job
        self.process = subprocess.Popen(_command(job, args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.error: str | None = None

    def ready(self) -> None:
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            self.error = f"did not start (exit {self.process.wait()})"

    def ask(self, what: str) -> dict | None:
        if self.error:
            return None
        self.process.stdin.write(what + "\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line.startswith("{"):
            self.error = f"{what} failed (exit {self.process.wait()})"
            return None
        return json.loads(line)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.write("quit\n")
            self.process.stdin.close()
            self.process.wait()


def _command(job: str, args: argparse.Namespace) -> list[str]:
    return [sys.executable, __file__, "--one", job, "--threads", str(args.threads), "--device", args.device]


def peak_memory(job: str, args: argparse.Namespace) -> dict:
    """The job's peak memory, measured in a fresh process of its own."""
    env = {**os.environ, **_hf.MALLOC_FIXED}
    done = subprocess.run([*_command(job, args), "--memory"], capture_output=True, text=True, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {"error": (done.stderr.strip().splitlines() or ["?"])[-1]}


def measure(args: argparse.Namespace) -> dict[str, dict]:
    workers = [Worker(job, args) for job in JOBS]
    try:
        for w in workers:
            w.ready()
        times: dict[str, list[float]] = {w.job: [] for w in workers}
        for _ in range(args.rounds):
            for w in workers:
                answer = w.ask("time")
                if answer:
                    times[w.job].append(answer["s"])
    finally:
        for w in workers:
            w.close()
    rows = {}
    for w in workers:
        memory = peak_memory(w.job, args)
        if w.error or "error" in memory:
            rows[w.job] = {"error": w.error or memory["error"]}
        else:
            rows[w.job] = {"ms": 1000 * statistics.median(times[w.job]), "peak_mib": memory["mib"]}
        print(w.job, rows[w.job], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", help="one job's process (used by the script itself)")
    parser.add_argument("--memory", action="store_true", help="with --one: measure its peak memory only")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.one:
        worker(args.one, device, args.memory)
        return
    before = _report.load_average()
    rows = measure(args)
    text = report(rows, args, device, before)
    print(text)
    if not args.no_write:
        _report.update_section(f"transformer-speed-{device.type}", text)


def verdict(rows: dict) -> str:
    """The issue's targets, checked on the measured rows."""
    need = ("gradient", "lrpkit attnlrp", "LXT attnlrp")
    if any("error" in rows[job] for job in need):
        return "targets: not checked (a job failed)"
    ours, lxt, gradient = rows["lrpkit attnlrp"], rows["LXT attnlrp"], rows["gradient"]["ms"]
    checks = [
        f"AttnLRP {ours['ms'] / gradient:.2f}x the gradient (≤ 1.5x: {'✓' if ours['ms'] <= 1.5 * gradient else '✗'})",
        f"{lxt['ms'] / ours['ms']:.2f}x faster than LXT's AttnLRP ({'✓' if ours['ms'] <= lxt['ms'] else '✗'})",
        f"peak memory {ours['peak_mib']:.1f} MiB vs LXT's {lxt['peak_mib']:.1f} MiB "
        f"({'✓' if ours['peak_mib'] <= lxt['peak_mib'] else '✗'})",
    ]
    return "targets: " + "; ".join(checks)


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
        f"vocabulary {CONFIG['vocab_size']}, 1 x 128 tokens, float32, random weights; each job in a process of its "
        f"own, medians of {args.rounds} rounds (every job once per round, in turn) after a warm-up. Gradient: the "
        "plain input gradient at the embeddings; LXT: gradient x input of the patched model (its AttnLRP / CP-LRP). "
        f"Targets: {TARGETS}.", "",
        *_report.environment(device),
        f"- transformers {_report.version('transformers')}, lxt {_report.version('lxt')} (commit f043441)",
        f"- load average before: {before}; after: {_report.load_average()}", "",
        *lines, "",
        verdict(rows),
    ])  # fmt: skip


if __name__ == "__main__":
    main()
