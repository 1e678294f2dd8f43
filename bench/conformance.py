"""Agreement of lrpkit's input relevance with Zennit's (and Captum's) where both define the same rules.

    python bench/conformance.py [--models mlp,cnn,tutorial_cnn,seq_mlp,seq_cnn,vgg16] [--vgg-size 64] [--no-write]
    python bench/conformance.py --models resnet18,resnet50 [--resnet-size 224]

Every lrpkit method is compared with the Zennit composite that puts the same rules on the same layers
(``bench/_peers.py``), in float64, on random networks: lrpkit's MLP, CNN and tutorial CNN (inputs in [0, 1],
mapped to [-1, 1] by the Format layer, so the first layer sees inputs of both signs), two random
``nn.Sequential`` models with BatchNorm, strided/padded/dilated convolutions, overlapping max pooling, average
and adaptive pooling, VGG-16 (random weights; ``--vgg-size`` pixels square, 224 for the real input size), and
torchvision's ResNet-18 and ResNet-50 (graphs: residual sums, BatchNorm; Zennit with its ``ResNetCanonizer``; only
the composites :data:`RESNET_METHODS`, ``--resnet-size`` pixels square, 224 by default).
Targets are the predicted classes. Both sides use the same epsilons (1e-6 for Epsilon) and stabilisers (1e-9
elsewhere, lrpkit's; Zennit's default is 1e-6), and two bias settings:

- bias left out: lrpkit's method as named (its rules leave the bias out), Zennit with ``zero_params=["bias"]``;
- bias included: lrpkit rules with ``bias=True``, Zennit's default. Zennit's ZBox cancels the bias whatever
  the setting (``b - b+ - b- = 0``) and Flat never has one, so lrpkit's ZBox/Flat stay bias-free; Zennit's
  WSquare would add ``b^2`` to its denominator, which lrpkit has no rule for, so it is always left out there.
  lrpkit gets the method's composite with every such rule replaced by its ``bias=True`` version; Zennit gets
  ``deeptaylor``'s rectified start ``relu(logits) * one_hot`` as the class filter ``one_hot * (logits > 0)``.

Sums (ResNet's residual ``+``) and average pooling: lrpkit's ``Proportional(1e-9)`` and Zennit's ``Norm`` with the
same stabiliser, 1e-9.

Captum's LRP (EpsilonRule, epsilon 1e-9, bias included, on every weighted and pooling layer) is compared
with lrpkit's ``Epsilon(1e-9, bias=True)`` on the models without BatchNorm (Captum does not merge it), once as
Captum defines it and once with a negligible eps on max pooling (see :data:`CAPTUM_NOTE`).

The number reported is, per sample, ``max |R_lrpkit - R_peer| / max |R_peer|`` over the input, maximised over
the samples. Writes the tables to ``bench/RESULTS.md`` (section "conformance"; other model sets and VGG sizes
get their own section).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
from collections.abc import Callable

import torch
from torch import nn

import lrpkit
import lrpkit.engine as engine
from _models import Case, make_case
from _peers import (
    METHODS,
    ZennitSetup,
    captum_explainer,
    missing,
    zennit_canonizers,
    zennit_composite,
    zennit_explainer,
)
from _report import environment, update_section
from lrpkit.composites import Composite, composite
from lrpkit.rules import AlphaBeta, Epsilon, Gamma, Rule, Simple

STABILIZER = 1e-9  # lrpkit's stabiliser of every rule but Epsilon/Simple; Zennit is set to the same
CAPTUM_EPSILON = 1e-9  # Captum's default
AGREE = 1e-6  # float64: anything above this is a difference in the definitions, not rounding
BATCH = 8
BATCHNORM_NOTE = (
    "the random BatchNorm layers have eps = 0: Zennit's SequentialMergeBatchNorm folds BatchNorm into the layer "
    "before and then sets it to mean 0, var 1, weight 1, bias 0 but keeps its eps, so with the default eps = 1e-5 "
    "its 'identity' BatchNorm still scales by 1/sqrt(1 + eps) and the canonized model's logits move by ~2e-6 "
    "relative (measured); eps = 0 keeps that Zennit quirk out of the comparison"
)
CAPTUM_NOTE = (
    "Captum applies its epsilon rule to max pooling as well: the arg-max input gets `z_j / (z_j + eps)` of "
    "`R_j`, so pooled values near 0 lose part of their relevance, while lrpkit passes all of `R_j` to the "
    "arg-max (winner-take-all, as Zennit's gradient does). With Captum's max-pooling eps set to 1e-30 the "
    "difference vanishes: it is that definition, not an error on either side."
)
MODELS = ("mlp", "cnn", "tutorial_cnn", "seq_mlp", "seq_cnn", "vgg16")
RESNETS = ("resnet18", "resnet50")
RESNET_METHODS = ("epsilon_plus", "epsilon_gamma_box", "epsilon_alpha2_beta1")
RESNET_BATCH = 2


# -- the models ------------------------------------------------------------------------------------------------


def random_sequential_mlp(generator: torch.Generator) -> nn.Sequential:
    """Flatten, Linear+BatchNorm1d, ReLU, Dropout, Linear, ReLU, Linear; inputs in [-1, 1] (both signs)."""
    model = nn.Sequential(
        nn.Flatten(),
        nn.Linear(64, 48),
        nn.BatchNorm1d(48),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.Linear(48, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )
    return _randomise_batchnorm(model, generator)


def random_sequential_cnn(generator: torch.Generator) -> nn.Sequential:
    """Strided, padded and dilated convolutions, BatchNorm2d, overlapping max pooling, avg and adaptive pooling."""
    model = nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1),
        nn.BatchNorm2d(8),
        nn.ReLU(),
        nn.MaxPool2d(3, stride=2, padding=1),
        nn.Conv2d(8, 16, 3, padding=2, dilation=2),
        nn.ReLU(),
        nn.AvgPool2d(2),
        nn.Conv2d(16, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(3),
        nn.Flatten(),
        nn.Linear(144, 10),
    )
    return _randomise_batchnorm(model, generator)


def _randomise_batchnorm(model: nn.Module, generator: torch.Generator) -> nn.Module:
    """Random running statistics and affine parameters; ``eps = 0`` (see :data:`BATCHNORM_NOTE`)."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
                n = module.num_features
                module.eps = 0.0
                module.running_mean.copy_(torch.randn(n, generator=generator) * 0.2)
                module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                module.bias.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


def build(name: str, vgg_size: int, resnet_size: int = 224) -> Case:
    """The float64 case ``name``, with the predicted classes as targets."""
    generator = torch.Generator().manual_seed(7)
    if name in ("mlp", "cnn", "vgg16"):
        case = make_case(name, 2 if name == "vgg16" else BATCH, vgg_size, dtype=torch.float64)
    elif name in RESNETS:
        case = make_case(name, RESNET_BATCH, resnet_size, dtype=torch.float64)
        case = dataclasses.replace(case, model=_randomise_batchnorm(case.model, generator))
    elif name == "tutorial_cnn":
        model = lrpkit.tutorial_cnn(seed=3).eval().double()
        x = torch.rand(BATCH, 1, 28, 28, generator=generator, dtype=torch.float64)
        case = Case(name, model, x, x.new_zeros(BATCH, dtype=torch.long), 10, *model.bounds)
    else:
        mlp = name == "seq_mlp"
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(5)
            model = (random_sequential_mlp if mlp else random_sequential_cnn)(generator).double()
        low = -1.0 if mlp else 0.0
        x = torch.rand((BATCH, 1, 8, 8) if mlp else (BATCH, 3, 32, 32), generator=generator, dtype=torch.float64)
        case = Case(name, model, x * (1.0 - low) + low, x.new_zeros(BATCH, dtype=torch.long), 10, low, 1.0)
    with torch.no_grad():
        predicted = case.model(case.x).argmax(1)
    return dataclasses.replace(case, target=predicted)


# -- lrpkit's side --------------------------------------------------------------------------------------------


def with_bias(rule: Rule) -> Rule:
    """The rule with ``bias=True`` where Zennit includes the bias (Epsilon, LRP-0, z+/alpha-beta, gamma)."""
    if isinstance(rule, (Simple, Epsilon, AlphaBeta, Gamma)):
        return dataclasses.replace(rule, bias=True)
    return rule


def biased(method: str) -> Composite:
    """lrpkit's composite of ``method`` with every rule that Zennit gives a bias made with ``bias=True``."""
    spec = composite(METHODS[method])
    return Composite(tuple((matcher, with_bias(rule)) for matcher, rule in spec.entries), spec.rectify)


def lrpkit_relevance(case: Case, method: str, bias: bool) -> torch.Tensor:
    bounds = None if hasattr(case.model, "bounds") else (case.low, case.high)
    spec = biased(method) if bias else METHODS[method]
    return engine.lrp(case.model, case.x, case.target, spec, bounds=bounds)


def start_filter(case: Case, rectify: bool) -> torch.Tensor:
    """The class filter ``one_hot(target)``, times ``logits > 0`` for rectified presets (deeptaylor)."""
    with torch.no_grad():
        logits = case.model(case.x)
    selected = nn.functional.one_hot(case.target, case.classes).to(logits)
    return selected * (logits > 0) if rectify else selected


# -- the peers' side --------------------------------------------------------------------------------------------


def zennit_relevance(case: Case, method: str, bias: bool) -> torch.Tensor:
    setup = ZennitSetup(bias=bias, stabilizer=STABILIZER)
    rules = zennit_composite(method, case.low, case.high, setup, canonizers=zennit_canonizers(case.name))
    rectified = METHODS[method] == "deeptaylor"
    explain, context = zennit_explainer(case.model, rules, rectify=rectified and not bias)
    target = start_filter(case, rectified) if bias else case.target
    with context:
        return explain(case.x, target).detach()


def captum_relevance(case: Case, maxpool_epsilon: float | None = None) -> torch.Tensor:
    return captum_explainer(case.model, CAPTUM_EPSILON, maxpool_epsilon)(case.x, case.target).detach()


def difference(mine: torch.Tensor, theirs: torch.Tensor) -> float:
    """max over samples of ``max |mine - theirs| / max |theirs|`` (0 where both are all zeros)."""
    scale = theirs.flatten(1).abs().amax(1).clamp(min=torch.finfo(theirs.dtype).tiny)
    return float(((mine - theirs).flatten(1).abs().amax(1) / scale).max())


def compare(mine: Callable[[], torch.Tensor], theirs: Callable[[], torch.Tensor]) -> float | str:
    """:func:`difference` of the two relevances, or the error one of them raised."""
    try:
        return difference(mine(), theirs())
    except Exception as err:
        return f"error: {type(err).__name__}: {str(err).splitlines()[0][:100]}"


# -- the report -------------------------------------------------------------------------------------------------


def cell(value: float | str) -> str:
    if isinstance(value, str):
        return value
    return f"{value:.1e}" if value <= AGREE else f"**{value:.1e} DIFFERS**"


def zennit_table(cases: list[Case], methods: tuple[str, ...] = tuple(METHODS)) -> str:
    """One row per method, one column per model; each cell: bias left out / bias included."""
    lines = ["| method | " + " | ".join(c.name for c in cases) + " |", "|---|" + "---|" * len(cases)]
    for method in methods:
        cells = []
        for case in cases:
            pair = [compare(*zennit_pair(case, method, bias)) for bias in (False, True)]
            cells.append(" / ".join(cell(value) for value in pair))
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def zennit_pair(case: Case, method: str, bias: bool) -> tuple[Callable[[], torch.Tensor], Callable[[], torch.Tensor]]:
    mine = functools.partial(lrpkit_relevance, case, method, bias)
    return mine, functools.partial(zennit_relevance, case, method, bias)


def captum_table(cases: list[Case]) -> str:
    """lrpkit's epsilon LRP vs Captum's, and vs Captum with a vanishing eps on max pooling (lrpkit: winner-take-all),
    on models without BatchNorm (Captum does not merge it)."""
    lines = [
        "| model | vs Captum LRP | vs Captum, max-pooling eps 1e-30 |",
        "|---|---|---|",
    ]
    rule = Epsilon(epsilon=CAPTUM_EPSILON, bias=True)
    for case in cases:
        mine = functools.partial(engine.lrp, case.model, case.x, case.target, rule)
        cells = [cell(compare(mine, functools.partial(captum_relevance, case, pool))) for pool in (None, 1e-30)]
        lines.append(f"| {case.name} | " + " | ".join(cells) + " |")
        print(lines[-1], flush=True)
    return "\n".join(lines)


def section_name(names: list[str], vgg_size: int, resnet_size: int) -> str:
    """The RESULTS.md section: "conformance" for the default run, "conformance-resnet" for both ResNets at 224,
    its own one for other models or sizes."""
    if tuple(names) == MODELS and vgg_size == 64:
        return "conformance"
    if tuple(names) == RESNETS and resnet_size == 224:
        return "conformance-resnet"
    sizes = (f"-{vgg_size}px" if "vgg16" in names else "") + (
        f"-resnet{resnet_size}px" if set(names) & set(RESNETS) else ""
    )
    return "conformance-" + "-".join(names) + sizes


def zennit_parts(cases: list[Case]) -> list[str]:
    """The lrpkit-vs-Zennit tables: every method on the chain models, :data:`RESNET_METHODS` on the ResNets."""
    chains = [c for c in cases if c.name not in RESNETS]
    resnets = [c for c in cases if c.name in RESNETS]
    parts = ["### lrpkit vs Zennit: max relative difference of the input relevance", ""]
    parts += ["Each cell: bias left out / bias included (see the settings above).", ""]
    if chains:
        parts += [zennit_table(chains), ""]
    if resnets:
        parts += ["torchvision ResNets (Zennit: `ResNetCanonizer`):", "", zennit_table(resnets, RESNET_METHODS), ""]
    return parts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    valid = ", ".join(MODELS + RESNETS)
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated, from {valid}")
    parser.add_argument("--vgg-size", type=int, default=64, help="VGG-16 input size (224: the real one; slow)")
    parser.add_argument("--resnet-size", type=int, default=224, help="ResNet input size (default 224)")
    parser.add_argument("--no-write", dest="write", action="store_false", help="do not update bench/RESULTS.md")
    args = parser.parse_args()
    notes = {name: missing(name) for name in ("zennit", "captum")}
    for note in filter(None, notes.values()):
        print(f"note: {note}")
    names = [name.strip() for name in args.models.split(",")]
    unknown = [name for name in names if name not in MODELS + RESNETS]
    if unknown:
        raise SystemExit(f"unknown models {unknown}; valid: {valid}")
    if all(notes.values()):
        print("nothing to compare with: neither Zennit nor Captum is installed")
        return
    cases = [build(name, args.vgg_size, args.resnet_size) for name in names]
    parts = ["## Conformance with Zennit and Captum", "", *environment(torch.device("cpu"))]
    parts += [f"- {c!r}" for c in cases] + [f"- note: {BATCHNORM_NOTE}", ""]
    if notes["zennit"] is None:
        parts += zennit_parts(cases)
    plain = [c for c in cases if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in c.model.modules())]
    if notes["captum"] is None and plain:
        parts += ["### lrpkit vs Captum: lrpkit Epsilon(1e-9, bias=True), max relative difference", ""]
        parts += [captum_table(plain), "", CAPTUM_NOTE, ""]
    text = "\n".join(parts)
    print(text)
    if args.write:
        update_section(section_name(names, args.vgg_size, args.resnet_size), text)


if __name__ == "__main__":
    main()
