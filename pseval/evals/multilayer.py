"""Cross-layer transcoders and crosscoders in a run: a folder given as an SAE becomes its scored views.

``pseval eval --sae CLT_DIR`` scores, each as its own result (:mod:`pseval.sae.multilayer`):

- ``layer_{i}``: layer ``i``'s encoder on its own input, top-1 among that layer's latents;
- ``global_{L}`` (CLT): the latents of every source layer ``<= L`` at once, each scaled by its decoder norm
  over the layers it writes to; ``global`` (crosscoder): every latent of all its layers, scaled the same way.

Without a pattern every ``layer_{i}`` and the global view over all layers are scored (a CLT's
``global_{L}`` for a smaller ``L`` on request: each costs as many encoder passes as it has layers). A pattern
(``--sae-pattern``) is matched against the view ids, e.g. ``'layer_(6|12)|global_12'``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pseval.errors import ConfigError
from pseval.sae.formats.loader import detect_multilayer, open_multilayer
from pseval.sae.multilayer import MultiLayerDictionary, global_source, per_layer_source
from pseval.sae.source import SAESource


def view_ids(dictionary: MultiLayerDictionary) -> tuple[list[str], list[str]]:
    """Every view id of ``dictionary`` and the default ones (every layer, the global view over all)."""
    layers = [e.layer for e in dictionary.encoders]
    per_layer = [f"layer_{layer}" for layer in layers]
    if dictionary.kind == "crosscoder":
        return [*per_layer, "global"], [*per_layer, "global"]
    contiguous = [layer for layer in layers if set(range(layer + 1)) <= set(layers)]
    ids = [*per_layer, *(f"global_{layer}" for layer in contiguous)]
    default = per_layer + ([f"global_{layers[-1]}"] if layers[-1] in contiguous else [])
    return ids, default


def views(dictionary: MultiLayerDictionary, pattern: str | None = None) -> list[SAESource]:
    """The views of ``dictionary`` whose id matches ``pattern`` in full (default: :func:`view_ids`' defaults)."""
    ids, default = view_ids(dictionary)
    if pattern is None:
        chosen = default
    else:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ConfigError(
                f"--sae-pattern {pattern!r} is not a regular expression ({exc})", "fix the pattern"
            ) from None
        chosen = [i for i in ids if regex.fullmatch(i)]
        if not chosen:
            raise ConfigError(
                f"--sae-pattern {pattern!r} matches none of {dictionary.path.name}'s views",
                f"match some of {', '.join(ids)}",
            )
    out = []
    for view in chosen:
        if view.startswith("layer_"):
            out.append(per_layer_source(dictionary, int(view.removeprefix("layer_"))))
        elif view == "global":
            out.append(global_source(dictionary))
        else:
            out.append(global_source(dictionary, int(view.removeprefix("global_"))))
    return out


def is_multilayer_spec(spec: Any) -> bool:
    """Whether ``spec`` is a path to a CLT or crosscoder folder."""
    if not isinstance(spec, (str, os.PathLike)) or str(spec).startswith("saelens:"):
        return False
    return detect_multilayer(Path(spec).expanduser()) is not None


def expand_multilayer(saes: Sequence[Any], pattern: str | None = None) -> list[Any]:
    """``saes`` with each CLT or crosscoder folder replaced by its views (:class:`SAESource` objects)."""
    out: list[Any] = []
    for spec in saes:
        if is_multilayer_spec(spec):
            out.extend(views(open_multilayer(Path(spec).expanduser()), pattern))
        else:
            out.append(spec)
    return out
