"""Conformance with LXT (AttnLRP's authors' implementation): lrpkit's token relevance against LXT's on tiny random
Hugging Face models (LLaMA, Qwen2, GPT-2; eager and sdpa attention) for AttnLRP and CP-LRP, and on torchvision's
``vit_b_16`` against LXT's ViT recipe (CP-LRP, Zennit's gamma 0.25 on the conv, 0.05 on Linear layers).

Runs in the LXT bench environment (``make bench-lxt``: LXT at commit f043441 with transformers 5.9.0; see
bench/README.md). Each case runs in its own process, because LXT patches transformers' classes process-wide:
lrpkit explains the model first, then LXT is patched in and explains the same model.

Settings (docs/lrp-rules.md, "Transformers"): float64, every bias zeroed, LRP-0 on Linear layers as LXT (gradient x
input), lrpkit's sums in ``bias=True`` mode (LXT's gradient x input gives a constant added to a signal -- GPT-2's
position embeddings -- its share and drops it), stabilisers 1e-12; max relative difference per sample, the worst.

    python bench/lxt_conformance.py [--vit] [--no-write]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _hf
import _report
import lrpkit
from lrpkit.rules import STABILIZER, Conservative, Epsilon, Proportional, Simple, Uniform

FAMILIES = ("llama", "qwen2", "gpt2")

TOLERANCE = 1e-4


def composite(method: str) -> dict:
    """lrpkit's rules as LXT computes them: LRP-0, constants in the sums' denominators, no visible stabiliser."""
    cp = method == "cp"
    return {
        "linear": Simple(),
        "matmul": Conservative(1e-12) if cp else Epsilon(1e-12),
        "product": Conservative() if cp else Uniform(),
        "sum": Proportional(1e-12, bias=True),
        "norm": Epsilon(1e-12, bias=True),
    }


def lxt_patch(family: str, method: str) -> None:
    import importlib

    from lxt.efficient import monkey_patch

    module = importlib.import_module(f"lxt.efficient.models.{family}")
    hf_module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
    monkey_patch(hf_module, module.cp_LRP if method == "cp" else module.attnLRP)


def one_language_model(family: str, attention: str, method: str) -> dict:
    model = _hf.zero_biases(_hf.make(family, attention))
    ids = torch.randint(0, _hf.VOCAB, (2, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        target = model(input_ids=ids).logits[:, -1].argmax(-1)
    ours = lrpkit.lrp(model, ids, lrpkit.Logit(target, position=-1), composite(method), position="input_ids")
    lxt_patch(family, method)
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_()
    logits = model(inputs_embeds=embeds).logits
    logits[torch.arange(len(ids)), -1, target].sum().backward()
    theirs = (embeds * embeds.grad).sum(-1).detach()
    top = logits[torch.arange(len(ids)), -1, target].detach()
    return row(family, attention, method, ours, theirs, top)


def row(model: str, attention: str, method: str, ours: torch.Tensor, theirs: torch.Tensor, top=None) -> dict:
    """One result: the difference, and the share of the logit each explanation holds."""
    share = lambda R: float((R.reshape(len(R), -1).sum(1) / top).mean()) if top is not None else float("nan")  # noqa: E731
    return {"model": model, "attention": attention, "method": method, "difference": _hf.max_relative(ours, theirs),
            "lrpkit sum / logit": share(ours), "lxt sum / logit": share(theirs)}  # fmt: skip


def one_vit() -> dict:
    """torchvision vit_b_16 (random weights) against LXT's ViT example (CP-LRP, gamma 0.25 / 0.05; Zennit's Gamma
    with lrpkit's stabiliser)."""
    import zennit.rules as z
    from torchvision.models import vision_transformer
    from zennit.composites import LayerMapComposite

    torch.manual_seed(0)
    model = vision_transformer.vit_b_16()
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)  # torchvision starts the head at zero: logits 0
    model = _hf.zero_biases(model.double().eval())
    x = torch.randn(1, 3, 224, 224, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(x)
    target = logits.argmax(1)
    top = logits.gather(1, target[:, None])[:, 0]
    # LXT's hooks sit on Conv2d/Linear modules; MultiheadAttention computes its projections with F.linear on its own
    # weights, where no hook fires: gradient x input there, i.e. LRP-0 -- the same here, by a module pattern.
    rules = {
        **composite("cp"),
        "conv": lrpkit.Gamma(0.25),
        "linear": lrpkit.Gamma(0.05),
        "MultiheadAttention": Simple(),
    }
    ours = lrpkit.lrp(model, x, target, rules)
    from lxt.efficient import monkey_patch, monkey_patch_zennit
    from lxt.efficient.models import vit_torch

    monkey_patch(vision_transformer, vit_torch.cp_LRP)
    monkey_patch_zennit()
    gamma = lambda value: z.Gamma(value, stabilizer=STABILIZER)  # noqa: E731 (lrpkit's stabiliser; Zennit's is 1e-6)
    rules_z = LayerMapComposite([(torch.nn.Conv2d, gamma(0.25)), (torch.nn.Linear, gamma(0.05))])
    rules_z.register(model)
    x = x.clone().requires_grad_()
    model(x)[0, target].sum().backward()
    rules_z.remove()
    theirs = (x * x.grad).detach()
    return row("vit_b_16", "MultiheadAttention", "cp, gamma 0.25 / 0.05", ours, theirs, top)


def run_all(vit: bool) -> list[dict]:
    cases = [["--one", f, a, m] for f in FAMILIES for a in ("eager", "sdpa") for m in ("attnlrp", "cp")]
    cases += [["--one", "vit", "-", "cp"]] if vit else []
    rows = []
    for case in cases:
        done = subprocess.run([sys.executable, __file__, *case], capture_output=True, text=True)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            error = (done.stderr.strip().splitlines() or ["no output"])[-1]
            rows.append({"model": case[1], "attention": case[2], "method": case[3], "error": error[:200]})
        else:
            rows.append(json.loads(lines[-1]))
        print(rows[-1], flush=True)
    return rows


def table(rows: list[dict]) -> str:
    head = ["| model | attention | method | max relative difference | ≤ 1e-4 | lrpkit Σ R / logit | LXT Σ R / logit |",
            "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        if "error" in r:
            head.append(f"| {r['model']} | {r['attention']} | {r['method']} | failed: {r['error']} | ✗ | | |")
            continue
        ok = "✓" if r["difference"] <= TOLERANCE else "✗"
        sums = [f"{r[k]:.6f}" if r[k] == r[k] else "" for k in ("lrpkit sum / logit", "lxt sum / logit")]
        head.append(
            f"| {r['model']} | {r['attention']} | {r['method']} | {r['difference']:.2e} | {ok} | {' | '.join(sums)} |"
        )
    return "\n".join(head)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--one", nargs=3, metavar=("MODEL", "ATTENTION", "METHOD"), help="one case (a subprocess)")
    parser.add_argument("--vit", action="store_true", help="also torchvision's vit_b_16 (minutes in float64)")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.one:
        family, attention, method = args.one
        print(json.dumps(one_vit() if family == "vit" else one_language_model(family, attention, method)))
        return
    rows = run_all(args.vit)
    text = "\n".join([
        "## Conformance with LXT (bench/lxt_conformance.py)", "",
        "Token relevance (pixels for the ViT) of lrpkit against LXT at commit f043441; tiny random models (hidden 64, "
        "2 layers, 4 heads, 2 key/value heads for LLaMA/Qwen2), 2 sequences of 16 tokens, the predicted next token "
        "at the last position; float64, biases zeroed, LRP-0 on Linear layers, sums with constants in the "
        "denominator (`bias=True`), stabilisers 1e-12. Σ R / logit: how much of the logit the token relevance "
        "holds (CP-LRP conserves: 1; AttnLRP loses the softmax gaps).", "",
        *_report.environment(torch.device("cpu")),
        f"- transformers {_report.version('transformers')}, lxt {_report.version('lxt')} (commit f043441)", "",
        table(rows),
    ])  # fmt: skip
    print(text)
    if not args.no_write:
        _report.update_section("lxt-conformance", text)


if __name__ == "__main__":
    main()
