"""A preset with its biases kept, as LXT computes AttnLRP and CP-LRP (used by the transformer faithfulness benches).

lrpkit's rules leave biases out by default (the bias's share of ``z`` is spread over the inputs); LXT's epsilon rule
keeps the bias in ``z`` and drops its share. ``with_bias("attnlrp")`` is the preset with ``bias=True`` on its
Linear-type rules, on LayerNorms and on sums (constants added to a sum, such as position embeddings, take their
share, which is dropped).
"""

from __future__ import annotations

import dataclasses

from lrpkit.composites import Composite, composite
from lrpkit.rules import Epsilon, Proportional


def with_bias(preset: str) -> Composite:
    entries = dict(composite(preset).entries)
    for kind in ("linear", "conv"):
        entries[kind] = dataclasses.replace(entries[kind], bias=True)
    entries |= {"norm": Epsilon(bias=True), "sum": Proportional(bias=True)}
    return Composite(tuple(entries.items()))
