"""Composite hook names: several hook points read as one vector, their values concatenated in order.

A dictionary that reads more than one point of the model (a crosscoder reads the residual stream of four
layers; the global view of a cross-layer transcoder reads every source layer's MLP input) is scored as one
SAE over the concatenation of its inputs. Its hook name joins the parts with ``+``
(``blocks.4.hook_resid_post+blocks.9.hook_resid_post``); :func:`pseval.models.hooks.hook_width` sums the
parts' widths and :func:`pseval.models.hooks.run_with_cache` returns the parts' values concatenated along the
last axis, in the order named.
"""

from __future__ import annotations

from collections.abc import Sequence

COMPOSITE_SEPARATOR = "+"


def hook_parts(name: str) -> list[str]:
    """The hook names a composite name joins, in order; ``[name]`` for a single hook."""
    if COMPOSITE_SEPARATOR not in name:
        return [name]
    return [part.strip() for part in name.split(COMPOSITE_SEPARATOR)]


def is_composite(name: str) -> bool:
    """Whether ``name`` joins several hook points."""
    return isinstance(name, str) and COMPOSITE_SEPARATOR in name


def join_hooks(names: Sequence[str]) -> str:
    """The composite name of ``names`` read together (a single name is itself)."""
    return COMPOSITE_SEPARATOR.join(names)
