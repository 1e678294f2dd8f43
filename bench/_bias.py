"""A preset with its biases kept, as LXT computes AttnLRP and CP-LRP (used by the transformer faithfulness benches).

lrpkit's rules leave biases out by default (the bias's share of ``z`` is spread over the inputs); LXT's epsilon rule
keeps the bias in ``z`` and drops its share. ``with_bias("attnlrp")`` is the preset with ``bias=True`` on its
Linear-type rules, on LayerNorms and on sums (constants added to a sum, such as position embeddings, take their
share, which is dropped). ``keep``: module-path patterns whose sums stay bias-free, e.g. ``("body.0",)`` for the
Format layer of an lrpkit Network, whose ``2 x - 1`` maps the input to [-1, 1]: LXT's models get inputs already
normalised, so the shift is part of the input there, and dropping its share would leave the background no relevance.
"""

from __future__ import annotations

import dataclasses

from lrpkit.composites import Composite, composite
from lrpkit.rules import Epsilon, Proportional


def with_bias(preset: str, keep: tuple[str, ...] = ()) -> Composite:
    entries = dict(composite(preset).entries)
    for kind in ("linear", "conv"):
        entries[kind] = dataclasses.replace(entries[kind], bias=True)
    entries |= {"norm": Epsilon(bias=True), "sum": Proportional(bias=True)}
    return Composite(tuple((pattern, Proportional()) for pattern in keep) + tuple(entries.items()))
