"""Tiny random Hugging Face models for the transformer benches (needs ``transformers``; never part of make test).

Every family as ``(config class, keyword arguments)``: hidden 64, 2 layers, 4 heads (2 key/value heads where the
family has grouped-query attention), a vocabulary of 101 tokens. :func:`make` builds one with random weights,
in eval mode, ``use_cache=False``, with the chosen attention implementation.
"""

from __future__ import annotations

from typing import Any

import torch

VOCAB = 101


def families() -> dict[str, tuple[Any, dict[str, Any], str]]:
    """Family -> (config class, its arguments, the model class name)."""
    import transformers as hf

    gqa = {"num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 128}
    decoder = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "vocab_size": VOCAB, **gqa}
    return {
        "llama": (hf.LlamaConfig, decoder, "AutoModelForCausalLM"),
        "qwen2": (hf.Qwen2Config, decoder, "AutoModelForCausalLM"),
        "gpt2": (
            hf.GPT2Config,
            {
                "n_embd": 64,
                "n_layer": 2,
                "n_head": 4,
                "vocab_size": VOCAB,
                "n_positions": 128,
                "bos_token_id": 0,
                "eos_token_id": 0,
            },
            "AutoModelForCausalLM",
        ),
        "bert": (
            hf.BertConfig,
            {
                "hidden_size": 64,
                "num_hidden_layers": 2,
                "num_attention_heads": 4,
                "intermediate_size": 128,
                "vocab_size": VOCAB,
                "max_position_embeddings": 128,
                "num_labels": 3,
            },
            "AutoModelForSequenceClassification",
        ),
    }


def make(family: str, attention: str = "eager", dtype: torch.dtype = torch.float64, seed: int = 0, **extra: Any):
    """A tiny random model of ``family`` (see :func:`families`); ``extra`` overrides config arguments."""
    import transformers as hf

    config_class, arguments, model_class = families()[family]
    torch.manual_seed(seed)
    config = config_class(**{**arguments, **extra})
    model = getattr(hf, model_class).from_config(config, attn_implementation=attention)
    model.config.use_cache = False
    return model.to(dtype).eval()


def zero_biases(model: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.zero_()
    return model


def max_relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Per sample ``max|a - b| / max|b|``, the worst sample (docs/lrp-rules.md, "Comparing heatmaps")."""
    a, b = a.reshape(len(a), -1).double(), b.reshape(len(b), -1).double()
    return float(((a - b).abs().amax(1) / b.abs().amax(1)).max())


MALLOC_FIXED = {"MALLOC_MMAP_THRESHOLD_": "131072", "MALLOC_TRIM_THRESHOLD_": "131072"}
"""glibc's malloc thresholds fixed, so that freed memory returns to the system between measurements."""


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {field}")


def peak_mib(call) -> float:
    """How far one call raises the process's peak resident memory above what was in use before it (MiB; Linux:
    the peak is reset through /proc/self/clear_refs)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    before = _status_kib("VmRSS")
    call()
    return (_status_kib("VmHWM") - before) / 1024
