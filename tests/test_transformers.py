"""Attention models: AttnLRP and CP-LRP per operation, on whole models, against LXT's construction and the twin.

Per operation, each rule against its definition (float64); on the small blocks of ``transformer_blocks``: CP-LRP
conserves from the logit to the input embeddings, AttnLRP loses exactly its softmax rows' gaps, both equal gradient
x input of LXT's construction (an oracle written by nobody), and the engine equals the NumPy twin node by node.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import lrpkit
from lrpkit.composites import composite
from lrpkit.engine.graph import Node
from lrpkit.engine.ops import Step, Trace
from lrpkit.engine.ops.attention import OPS as ATTENTION
from lrpkit.engine.ops.norms import OPS as NORMS
from lrpkit.engine.walk import graph_of
from lrpkit.errors import SpecError
from lrpkit.reference import check_model, from_model
from lrpkit.rules import Conservative, Epsilon, Proportional, Uniform
from transformer_blocks import F64, inputs, lxt_copy, make, zero_biases

BLOCKS = ["encoder", "encoder_fused", "decoder", "decoder_fused", "vit"]
TINY = 1e-30  # a stabiliser too small to show: the rules' limit epsilon -> 0, as LXT computes them


def exact(matmul, product, bias=False) -> dict:
    """The rules of a method with stabilisers ``TINY`` everywhere (``bias=True``: constants in sums' denominators,
    as gradient x input has them)."""
    return {
        "linear": Epsilon(TINY),
        "conv": Epsilon(TINY),
        "matmul": matmul,
        "product": product,
        "sum": Proportional(TINY, bias=bias),
        "norm": Epsilon(TINY),
    }


ATTNLRP, CP = exact(Epsilon(TINY), Uniform()), exact(Conservative(TINY), Conservative())


def target_of(name: str, model: nn.Module, x: torch.Tensor) -> object:
    """The explained logit: the predicted class, or for a decoder the predicted next token at the last position."""
    return lrpkit.Logit("pred", position=-1) if name.startswith("decoder") else "pred"


def readout(name: str, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The explained logit per sample."""
    with torch.no_grad():
        out = model(x)
    out = out[:, -1] if name.startswith("decoder") else out
    return out.max(1).values


def embedding_relevance(name: str, model: nn.Module, x: torch.Tensor, method) -> torch.Tensor:
    """Relevance at the explained input: the embedding output for token ids, else ``x`` itself."""
    R = lrpkit.layerwise_lrp(model, x, target_of(name, model, x), method)
    return next(iter(R.values()))


def sequence_relevance(name: str, model: nn.Module, x: torch.Tensor, method) -> torch.Tensor:
    """Relevance at the input embeddings: for the ViT the token sequence with its class token (the concatenation),
    whose slice of relevance a constant class token cannot pass on to the pixels."""
    R = lrpkit.layerwise_lrp(model, x, target_of(name, model, x), method)
    if name == "vit":
        return R[next(n for n in R if n.startswith("cat"))]
    return next(iter(R.values()))


# -- per operation ------------------------------------------------------------------------------------------------


def step(op: str, inputs: list, R: torch.Tensor, rule=None, receivers=None, **params) -> list:
    node = Node("n", op, tuple(f"i{k}" for k in range(len(inputs))), params)
    ops = {**ATTENTION, **NORMS}
    output = ops[op].forward(node, inputs, Trace({}, {}))
    rules = {"n": rule} if rule is not None else {}
    slots = tuple(range(len(inputs))) if receivers is None else receivers
    return ops[op].relevance(Step(node, inputs, output, R, Trace({}, rules), slots))


def test_softmax_rule_is_the_taylor_formula():
    generator = torch.Generator().manual_seed(0)
    x, R = torch.randn(3, 5, generator=generator, dtype=F64), torch.randn(2, 3, 5, generator=generator, dtype=F64)
    (R_in,) = step("softmax", [x], R, dim=1, dtype=None)
    s = torch.softmax(x, 1)
    for k in range(2):
        for row in range(3):
            for i in range(5):
                expected = x[row, i] * (R[k, row, i] - s[row, i] * R[k, row].sum())
                assert abs(float(R_in[k, row, i] - expected)) <= 1e-14


def test_softmax_rule_gives_masked_positions_nothing():
    x = torch.tensor([[0.3, float("-inf"), -1.2, torch.finfo(F64).min]], dtype=F64)
    R = torch.ones(1, 1, 4, dtype=F64)
    (R_in,) = step("softmax", [x], R, dim=1, dtype=None)
    assert torch.isfinite(R_in).all() and R_in[0, 0, 1] == 0 and R_in[0, 0, 3] == 0


def test_matmul_rule_splits_the_epsilon_rule_evenly_and_conserves():
    generator = torch.Generator().manual_seed(1)
    A, B = torch.randn(2, 3, 4, generator=generator, dtype=F64), torch.randn(2, 4, 5, generator=generator, dtype=F64)
    R = torch.randn(1, 2, 3, 5, generator=generator, dtype=F64)
    R_A, R_B = step("matmul", [A, B], R, Epsilon(1e-6), equation=None)
    O = A @ B
    S = R[0] / (O + 1e-6 * torch.where(O >= 0, 1.0, -1.0))
    torch.testing.assert_close(R_A[0], 0.5 * A * (S @ B.mT), rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(R_B[0], 0.5 * B * (A.mT @ S), rtol=1e-13, atol=1e-13)
    total = (R_A.sum() + R_B.sum()) / (S * O).sum()
    assert abs(float(total) - 1.0) <= 1e-12


def test_einsum_matmul_equals_the_matrix_form():
    generator = torch.Generator().manual_seed(2)
    A, B = torch.randn(2, 3, 4, generator=generator, dtype=F64), torch.randn(2, 5, 4, generator=generator, dtype=F64)
    R = torch.randn(1, 2, 3, 5, generator=generator, dtype=F64)
    R_A, R_B = step("matmul", [A, B], R, Epsilon(1e-6), equation="bik,bjk->bij")
    R_A2, R_B2 = step("matmul", [A, B.mT], R, Epsilon(1e-6), equation=None)
    torch.testing.assert_close(R_A, R_A2, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(R_B, R_B2.mT, rtol=1e-13, atol=1e-13)


def test_cp_rule_holds_the_attention_weights_constant():
    generator = torch.Generator().manual_seed(3)
    A, V = torch.softmax(torch.randn(3, 4, generator=generator, dtype=F64), 1), torch.randn(4, 2, dtype=F64)
    R = torch.randn(1, 3, 2, generator=generator, dtype=F64)
    node = Node("n", "matmul", ("a", "v"), {"equation": None, "held": 0})
    O = A @ V
    shares = ATTENTION["matmul"].relevance(Step(node, [A, V], O, R, Trace({}, {"n": Conservative(1e-9)}), (0, 1)))
    assert shares[0] is None
    assert abs(float(shares[1].sum() - R.sum())) <= 1e-7 * float(R.abs().sum())


def test_layer_norm_rule_is_the_epsilon_rule_of_the_sigma_fixed_linear_map():
    """The dense matrix of ``x -> (x - mean(x)) w / sigma`` (sigma of the actual x) from autograd's jacobian."""
    generator = torch.Generator().manual_seed(4)
    x, w = torch.randn(2, 5, generator=generator, dtype=F64), torch.rand(5, generator=generator, dtype=F64) + 0.5
    R = torch.randn(1, 2, 5, generator=generator, dtype=F64)
    R_in = step("layer_norm", [x, w, None], R, Epsilon(1e-6), shape=(5,), eps=1e-5)[0]
    for row in range(2):
        sigma = ((x[row] - x[row].mean()).square().mean() + 1e-5).sqrt()
        fixed = lambda t, sigma=sigma: (t - t.mean()) * w / sigma  # noqa: E731
        J = torch.autograd.functional.jacobian(fixed, x[row])  # J[j, i] = w_ij of the linear map
        z = J @ x[row]
        s = R[0, row] / (z + 1e-6 * torch.where(z >= 0, 1.0, -1.0))
        torch.testing.assert_close(R_in[0, row], x[row] * (J.T @ s), rtol=1e-12, atol=1e-13)


# -- whole models ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BLOCKS)
def test_cp_lrp_conserves_from_the_logit_to_the_input_embeddings(name):
    model, x = zero_biases(make(name)), inputs(name)
    R = sequence_relevance(name, model, x, CP)
    top = readout(name, model, x)
    assert float(((R.flatten(1).sum(1) - top).abs() / top.abs()).max()) <= 1e-6


@pytest.mark.parametrize("name", BLOCKS)
def test_attnlrp_loses_exactly_the_softmax_gaps(name):
    """``sum R_in - R_top`` equals the sum over softmax rows of ``sum x R - (sum x s)(sum R) - sum R``."""
    model, x = zero_biases(make(name)), inputs(name)
    target = target_of(name, model, x)
    R = lrpkit.layerwise_lrp(model, x, target, ATTNLRP)
    graph, _ = graph_of(model, x)
    values = from_model(model, x).values(x.numpy())
    gaps = torch.zeros(len(x), dtype=F64)
    for node in graph.nodes:
        if node.op == "softmax" and node.name in R:
            s, xs = (torch.from_numpy(values[n]) for n in (node.name, node.inputs[0]))
            R_out, dim = R[node.name], node.params["dim"]
            finite = torch.where(s == 0, torch.zeros_like(xs), xs)
            row = (finite * R_out).sum(dim) - (finite * s).sum(dim) * R_out.sum(dim) - R_out.sum(dim)
            gaps += row.reshape(len(x), -1).sum(1)  # (MultiheadAttention's rows are (N * heads, ...), n-major)
    inputs_ = R[next(n for n in R if n.startswith("cat"))] if name == "vit" else next(iter(R.values()))
    total = inputs_.flatten(1).sum(1) - readout(name, model, x)
    assert float(gaps.abs().max()) > 1e-3  # the gaps are there to be measured
    torch.testing.assert_close(total, gaps, rtol=0, atol=1e-8)


def lxt_oracle(name: str, model: nn.Module, x: torch.Tensor, mode: str) -> torch.Tensor:
    """Gradient x input of LXT's construction at the explained input (embeddings for token ids)."""
    twin = lxt_copy(model, mode)
    if x.is_floating_point():
        embeds, call = x.clone().requires_grad_(), lambda e: twin(e)
    else:
        embeds = twin.embed(x).detach().requires_grad_()
        call = lambda e: twin(inputs_embeds=e)  # noqa: E731
    out = call(embeds)
    out = out[:, -1] if name.startswith("decoder") else out
    with torch.no_grad():
        picked = model(x)
    picked = (picked[:, -1] if name.startswith("decoder") else picked).argmax(1)
    (grad,) = torch.autograd.grad(out.gather(1, picked[:, None]).sum(), embeds)
    return (grad * embeds).detach()


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("method", ["attnlrp", "cp"])
def test_equals_gradient_times_input_of_lxts_construction(name, method):
    model, x = zero_biases(make(name)), inputs(name)
    rules = exact(Epsilon(TINY), Uniform(), bias=True) if method == "attnlrp" else exact(*CP_RULES, bias=True)
    ours = embedding_relevance(name, model, x, rules)
    theirs = lxt_oracle(name, model, x, method)
    assert float((ours - theirs).abs().max() / theirs.abs().max()) <= 1e-10


CP_RULES = (Conservative(TINY), Conservative())


@pytest.mark.parametrize("name", BLOCKS)
@pytest.mark.parametrize("method", ["attnlrp", "cp_lrp", "attnlrp_vit", "epsilon"])
def test_engine_matches_the_numpy_twin(name, method):
    model, x = make(name), inputs(name)
    with torch.no_grad():
        out = model(x)
    target = torch.zeros_like(out)
    if out.dim() == 3:
        target[:, -1, 3] = 1.0
    else:
        target[:, 1] = 1.0
    check_model(model, x, method, target, atol=1e-10, rtol=1e-10)


def test_presets_are_composites_of_the_attention_rules():
    keep = Epsilon(bias=True)  # Linear-type layers keep their biases in the denominators, as LXT
    assert composite("attnlrp") == lrpkit.composites.Composite(
        (("linear", keep), ("conv", keep), ("matmul", Epsilon()), ("product", Uniform()))
    )
    vit = dict(composite("cp_lrp_vit").entries)
    assert vit["conv"] == lrpkit.Gamma(0.25, bias=True) and vit["linear"] == lrpkit.Gamma(0.05, bias=True)
    assert vit["matmul"] == Conservative() and vit["product"] == Conservative()
    assert composite(composite("cp_lrp").to_json()) == composite("cp_lrp")


# -- the graph: normalisers, held factors, token ids -----------------------------------------------------------------


def test_written_out_rmsnorm_is_held_constant_and_its_power_is_off_the_path():
    model, x = make("decoder"), inputs("decoder")
    graph, _ = graph_of(model, x)
    assert graph.input.startswith("embedding")
    rsqrt = [n.name for n in graph.nodes if n.op == "power" and n.params["fn"] == "rsqrt"]
    assert rsqrt and set(rsqrt) <= graph.normalisers
    assert not any(n.op == "power" for n in graph.relevant)


def test_cp_marks_the_attention_weights_and_the_gate_branch():
    model, x = make("decoder"), inputs("decoder")
    graph, _ = graph_of(model, x)
    held = {n.op: graph.origin(n.inputs[n.params["held"]]).op for n in graph.nodes if "held" in n.params}
    assert held == {"matmul": "softmax", "mul": "activation"}


def test_fused_attention_is_explained_as_its_parts():
    model, x = make("decoder_fused"), inputs("decoder_fused")
    graph, _ = graph_of(model, x)
    ops = [n.op for n in graph.relevant]
    assert "call" not in ops and ops.count("softmax") == 2 and ops.count("matmul") == 4


def test_an_unsupported_op_on_the_path_is_named_with_its_line():
    class Cube(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.einsum("ni,ni,ni->ni", x, x, x))

    with pytest.raises(SpecError, match=r"einsum.*test_transformers.py:\d+"):
        lrpkit.lrp(Cube().double(), torch.randn(2, 4, dtype=F64), 0, "attnlrp")


# -- text: tokens, positions, masks, embeddings ----------------------------------------------------------------------


def test_token_ids_give_one_relevance_per_token():
    model, x = make("encoder"), inputs("encoder")
    tokens = lrpkit.lrp(model, x, 1, "attnlrp")
    R = lrpkit.layerwise_lrp(model, x, 1, "attnlrp")
    assert tokens.shape == x.shape
    torch.testing.assert_close(tokens, next(iter(R.values())).sum(-1), rtol=1e-12, atol=1e-14)


def test_inputs_embeds_give_the_same_relevance_as_token_ids():
    model, x = make("decoder"), inputs("decoder")
    target = lrpkit.Logit(3, position=-1)
    embeds = model.embed(x).detach()
    by_ids = lrpkit.lrp(model, x, target, "cp_lrp")
    by_embeds = lrpkit.lrp(model, embeds, target, "cp_lrp", position="inputs_embeds")
    torch.testing.assert_close(by_embeds.sum(-1), by_ids, rtol=1e-12, atol=1e-14)


def test_a_right_padded_batch_explains_each_sequence_as_alone():
    model = make("decoder")
    short = torch.tensor([[3, 5, 7, 2]])
    padded = torch.tensor([[3, 5, 7, 2, 0, 0], [1, 4, 4, 9, 8, 6]])
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [1] * 6])
    target = lrpkit.Logit(3, position=torch.tensor([3, 5]))
    batch = lrpkit.lrp(model, padded, target, "attnlrp", kwargs={"attention_mask": mask})
    alone = lrpkit.lrp(model, short, lrpkit.Logit(3, position=-1), "attnlrp", kwargs={"attention_mask": mask[:1, :4]})
    torch.testing.assert_close(batch[0, :4], alone[0], rtol=1e-10, atol=1e-12)
    assert torch.equal(batch[0, 4:], torch.zeros(2, dtype=F64))


def test_logit_target_at_a_position_and_contrastive():
    model, x = make("decoder"), inputs("decoder")
    with torch.no_grad():
        out = model(x)
    filter_ = torch.zeros_like(out)
    filter_[:, 2, 5] = 1.0
    torch.testing.assert_close(
        lrpkit.lrp(model, x, lrpkit.Logit(5, position=2), "attnlrp"), lrpkit.lrp(model, x, filter_, "attnlrp")
    )
    filter_[:, 2] -= (1 - filter_[:, 2]) / (out.shape[-1] - 1)
    torch.testing.assert_close(
        lrpkit.lrp(model, x, lrpkit.Logit(5, position=2, contrastive=True), "attnlrp"),
        lrpkit.lrp(model, x, filter_, "attnlrp"),
    )


def test_bfloat16_models_accumulate_relevance_in_float32():
    model, x = make("decoder_fused"), inputs("decoder_fused")
    target = lrpkit.Logit(3, position=-1)
    reference = lrpkit.lrp(model.float(), x, target, "cp_lrp")
    half = lrpkit.lrp(model.bfloat16(), x, target, "cp_lrp")
    assert half.dtype == torch.float32 and torch.isfinite(half).all()
    cosine = float(torch.nn.functional.cosine_similarity(half.flatten(), reference.flatten(), 0))
    assert cosine >= 0.98


def test_the_twin_runs_on_token_ids_with_its_own_numpy_forward():
    model, x = make("decoder"), inputs("decoder")
    twin = from_model(model, x)
    logits = twin.values(x.numpy())[twin.graph.output]
    with torch.no_grad():
        np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-12, atol=1e-12)


def test_values_made_like_a_signal_are_constants():
    """``y.new_zeros(...)`` (Swin builds its masks so) reads only y's shape and dtype: a constant, so the sum is a
    lone signal plus a constant and all of the logit goes to ``y`` (refused before: relevance reached the call)."""

    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 3, bias=False)

        def forward(self, x):
            y = self.fc(x)
            return y + y.new_zeros(y.shape).fill_(0.5)

    model, x = Masked().double(), torch.randn(2, 4, dtype=F64)
    R = lrpkit.lrp(model, x, 1, {"linear": Epsilon(TINY)})
    torch.testing.assert_close(R.sum(1), model(x)[:, 1].detach(), rtol=1e-12, atol=0)
