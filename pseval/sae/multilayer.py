"""Dictionaries that read or write more than one layer: cross-layer transcoders (CLTs) and crosscoders.

A CLT has one encoder per source layer ``i`` (reading that layer's MLP input) whose latents write to the MLP
outputs of layers ``i`` and later; a Gemma Scope 2 crosscoder is built the same way over a few residual
layers: one encoder per layer, each with its own latents, each latent writing to every layer of the
crosscoder. pseval scores them as SAEs over block-wise readers
(:class:`MultiLayerBlocks`), two ways, each its own result:

- **per layer** (:func:`per_layer_source`): layer ``i``'s encoder on its own input, latents as stored;
- **global** (:func:`global_source`): every latent of the source layers up to ``L`` at once, read from the
  concatenation of their inputs (a composite hook, :mod:`pseval.models.composite`), each activation scaled by
  its decoder norm over all the layers it writes to, so latents of different layers compare on what they
  write. A crosscoder's global view is every latent of all its layers, scaled the same way.

Only the encoder side is read while scoring (column blocks of ``W_enc``, as
:class:`~pseval.sae.lazy.SafetensorsBlocks` reads them); decoder norms are computed once, streaming the
decoder rows a bounded piece at a time, and decoder rows are read only for the chosen latents (the logit
lens reads a CLT latent's decoder summed over the layers it writes to, which is what it adds to the residual
stream; a crosscoder latent's decoder at its deepest layer).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from pseval.errors import SAEError
from pseval.models.composite import join_hooks
from pseval.sae.config import JumpReLUSAEConfig, SAEConfig
from pseval.sae.lazy import BLOCK_ELEMENTS, SafetensorsBlocks, all_finite, read_byte_ranges
from pseval.sae.source import SAESource, TensorRef

Kind = Literal["clt", "crosscoder"]


@dataclass(frozen=True)
class LayerEncoder:
    """One layer's encoder as its file stores it: ``W_enc`` (``[d_in, d_sae]``, or transposed) and vectors."""

    layer: int
    """The model layer it reads."""
    hook: str
    """The hook it reads (``blocks.5.hook_mlp_in``)."""
    d_in: int
    d_sae: int
    w_enc: TensorRef
    b_enc: TensorRef
    threshold: TensorRef | None
    """None: a ReLU encoder (threshold 0)."""
    decoder: tuple[TensorRef, ...] = ()
    """Tensors ``[d_sae, ..., d_out]`` whose row ``f`` holds latent ``f``'s decoder (all layers it writes)."""
    others: Mapping[str, TensorRef] = field(default_factory=dict)
    """Further tensors of the files (``b_dec``, a skip connection), checked for NaN/Inf with the rest."""


@dataclass
class MultiLayerDictionary:
    """An opened CLT or crosscoder: its layers' encoders (headers only, no weight data)."""

    kind: Kind
    name: str
    """The folder name, the stem of its results' names."""
    path: Path
    format: str
    encoders: tuple[LayerEncoder, ...]
    """By source layer (CLT) or by position (crosscoder)."""
    model_name: str | None
    metadata: dict[str, Any]
    files: tuple[Path, ...]
    decoder_rows: Literal["sum", "last"] = "sum"
    """How a latent's decoder over several layers becomes one ``d_model`` row for the logit lens."""

    def encoder_for_layer(self, layer: int) -> LayerEncoder:
        found = [e for e in self.encoders if e.layer == layer]
        if not found:
            have = ", ".join(str(e.layer) for e in self.encoders)
            raise SAEError(f"{self.path} has no encoder for layer {layer}", f"choose one of layers {have}")
        return found[0]


@dataclass(frozen=True)
class LatentGroup:
    """Latents ``[start, start + d_sae)`` of a scored dictionary: pre-activations summed over ``encoders``
    (each ``(input offset, encoder)``), with the decoder ``decoder`` (refs as :attr:`LayerEncoder.decoder`)."""

    start: int
    d_sae: int
    encoders: tuple[tuple[int, LayerEncoder], ...]
    decoder: tuple[TensorRef, ...]


def _part_source(encoder: LayerEncoder, spec: str) -> SAESource:
    cfg = JumpReLUSAEConfig(d_in=encoder.d_in, d_sae=encoder.d_sae, hook_name=encoder.hook)
    return SAESource(
        spec=spec,
        cfg=cfg,
        format="multilayer_part",
        path=encoder.w_enc.path,
        tensors={"W_enc": encoder.w_enc},
    )


def check_source(encoder: LayerEncoder, spec: str) -> SAESource:
    """Every tensor of one layer's files as an :class:`SAESource`, for the streaming NaN/Inf check."""
    tensors = {"W_enc": encoder.w_enc, "b_enc": encoder.b_enc, **encoder.others}
    if encoder.threshold is not None:
        tensors["threshold"] = encoder.threshold
    tensors.update({f"W_dec_{i}": ref for i, ref in enumerate(encoder.decoder)})
    cfg = JumpReLUSAEConfig(d_in=encoder.d_in, d_sae=encoder.d_sae)
    return SAESource(spec=spec, cfg=cfg, format="multilayer_part", path=encoder.w_enc.path, tensors=tensors)


def _vector(ref: TensorRef, n: int, spec: str) -> torch.Tensor:
    from pseval.sae.formats._common import read_safetensors

    value = read_safetensors(ref.path, {ref.key})[ref.key].reshape(-1).to(torch.float32, copy=True)
    if value.numel() != n:
        raise SAEError(
            f"{spec}: {ref.key} in {ref.path.name} has {value.numel()} entries, not {n}",
            "re-download the files",
        )
    if not all_finite(value):
        raise SAEError(
            f"{spec}: tensor {ref.key} in {ref.path.name} holds NaN or Inf", "re-download the files"
        )
    return value


def _rows(ref: TensorRef, start: int, end: int) -> torch.Tensor:
    """Rows ``[start, end)`` of a tensor whose first axis is the latent, flattened: ``[end - start, rest]``."""
    from pseval.sae.formats._common import safetensors_header

    entries, data_start = safetensors_header(ref.path)
    entry = entries[ref.key]
    width = math.prod(entry.shape[1:])
    itemsize = torch.empty(0, dtype=entry.dtype).element_size()
    begin = data_start + entry.begin + start * width * itemsize
    flat = read_byte_ranges(ref.path, [(begin, (end - start) * width * itemsize)]).view(entry.dtype)
    return flat.reshape(end - start, width).to(torch.float32)


_NORMS: dict[tuple[object, ...], torch.Tensor] = {}
"""Decoder norms already computed in this process, by file identity (several views share a layer's norms)."""


def decoder_norms(decoder: Sequence[TensorRef], d_sae: int, spec: str) -> torch.Tensor:
    """Each latent's decoder norm over every layer it writes to, the rows streamed a bounded piece at a time."""
    key = tuple((str(r.path), r.key, r.path.stat().st_size, r.path.stat().st_mtime_ns) for r in decoder)
    if key not in _NORMS:
        _NORMS[key] = _stream_norms(decoder, d_sae, spec)
    return _NORMS[key]


def _stream_norms(decoder: Sequence[TensorRef], d_sae: int, spec: str) -> torch.Tensor:
    from pseval.sae.formats._common import safetensors_header

    squares = torch.zeros(d_sae, dtype=torch.float64)
    for ref in decoder:
        entries, _ = safetensors_header(ref.path)
        width = math.prod(entries[ref.key].shape[1:])
        step = max(1, BLOCK_ELEMENTS // max(1, width))
        for start in range(0, d_sae, step):
            rows = _rows(ref, start, min(d_sae, start + step))
            if not all_finite(rows):
                raise SAEError(
                    f"{spec}: tensor {ref.key} in {ref.path.name} holds NaN or Inf", "re-download the files"
                )
            squares[start : start + rows.shape[0]] += rows.double().square().sum(-1)
    return squares.sqrt().to(torch.float32)


class MultiLayerBlocks:
    """:class:`~pseval.sae.lazy.LatentBlocks` of a dictionary made of latent groups over a concatenated input.

    ``W_enc`` blocks are zero outside the rows of the inputs a latent reads. With ``scale_by_decoder_norm``
    the activations are multiplied by each latent's decoder norm (folded into ``W_enc``, ``b_enc`` and the
    threshold, exact for JumpReLU), and ``W_dec`` blocks are unit columns, so folding again changes nothing;
    without it, ``W_dec`` blocks are the norms as one column, so ``fold_decoder_norms`` folds the true norms.
    """

    def __init__(
        self,
        cfg: SAEConfig,
        groups: Sequence[LatentGroup],
        scale_by_decoder_norm: bool,
        decoder_rows: Literal["sum", "last"],
        dtype: str | None = None,
    ) -> None:
        self.cfg = cfg.model_copy(deep=True)
        if dtype is not None:
            self.cfg.dtype = dtype  # type: ignore[assignment]
        self._dtype = self.cfg.torch_dtype()
        self.groups = list(groups)
        self._rows_mode = decoder_rows
        self._spec = str(cfg.metadata.get("source", "dictionary"))
        self._parts: dict[Path, SafetensorsBlocks] = {}
        b_enc, threshold = [], []
        for group in self.groups:
            b, t = self._group_vectors(group)
            b_enc.append(b)
            threshold.append(t)
        self._b_enc_F, self._threshold_F = torch.cat(b_enc), torch.cat(threshold)
        self._norms_F: torch.Tensor | None = None
        self._scale_F: torch.Tensor | None = None
        if scale_by_decoder_norm:
            self._scale_F = self.norms().clamp(min=1e-8)
            self._b_enc_F = self._b_enc_F * self._scale_F
            self._threshold_F = self._threshold_F * self._scale_F

    def _group_vectors(self, group: LatentGroup) -> tuple[torch.Tensor, torch.Tensor]:
        """``b_enc`` and the threshold of a group: one per latent, the same in every file that stores them."""
        b_encs = [_vector(e.b_enc, group.d_sae, self._spec) for _, e in group.encoders]
        thresholds = [
            _vector(e.threshold, group.d_sae, self._spec)
            if e.threshold is not None
            else torch.zeros(group.d_sae)
            for _, e in group.encoders
        ]
        for name, values in (("b_enc", b_encs), ("threshold", thresholds)):
            if any(not torch.equal(values[0], v) for v in values[1:]):
                raise SAEError(
                    f"{self._spec}: the layers' files hold different {name} vectors for the same latents, and "
                    "pseval does not know how they combine",
                    "report the release's layout to pseval with a link to its documentation",
                )
        return b_encs[0], thresholds[0]

    def _part(self, encoder: LayerEncoder) -> SafetensorsBlocks:
        key = encoder.w_enc.path
        if key not in self._parts:
            self._parts[key] = SafetensorsBlocks(_part_source(encoder, self._spec), None)
        return self._parts[key]

    def norms(self) -> torch.Tensor:
        """Every latent's decoder norm over the layers it writes to (computed once)."""
        if self._norms_F is None:
            self._norms_F = torch.cat([decoder_norms(g.decoder, g.d_sae, self._spec) for g in self.groups])
        return self._norms_F

    def b_dec(self) -> torch.Tensor:
        return torch.zeros(self.cfg.d_in, dtype=self._dtype)

    def _overlapping(self, start: int, end: int) -> list[tuple[LatentGroup, int, int]]:
        out = []
        for group in self.groups:
            lo, hi = max(start, group.start), min(end, group.start + group.d_sae)
            if lo < hi:
                out.append((group, lo, hi))
        return out

    def input_range(self, start: int, end: int) -> tuple[int, int]:
        """The rows of the concatenated input that latents ``[start, end)`` read (their ``W_enc`` is zero
        elsewhere): :func:`~pseval.sae.lazy.feature_blocks` multiplies only those, so a global view costs
        the sum of its layers' encodes."""
        spans = [(off, off + e.d_in) for g, _, _ in self._overlapping(start, end) for off, e in g.encoders]
        return min(a for a, _ in spans), max(b for _, b in spans)

    def _w_enc(self, start: int, end: int) -> torch.Tensor:
        W_enc_DB = torch.zeros(self.cfg.d_in, end - start, dtype=torch.float32)
        overlapping = self._overlapping(start, end)
        # Blocks come in order: readers of layers left behind (and their cached column slabs) are let go.
        current = {e.w_enc.path for group, _, _ in overlapping for _, e in group.encoders}
        self._parts = {path: part for path, part in self._parts.items() if path in current}
        for group, lo, hi in overlapping:
            for offset, encoder in group.encoders:
                part = self._part(encoder).block(lo - group.start, hi - group.start, ["W_enc"])["W_enc"]
                W_enc_DB[offset : offset + encoder.d_in, lo - start : hi - start] = part
        if self._scale_F is not None:
            W_enc_DB *= self._scale_F[start:end]
        return W_enc_DB.to(self._dtype)

    def block(self, start: int, end: int, names: Sequence[str]) -> dict[str, torch.Tensor]:
        out: dict[str, torch.Tensor] = {}
        for name in names:
            if name == "W_enc":
                out[name] = self._w_enc(start, end)
            elif name == "b_enc":
                out[name] = self._b_enc_F[start:end].to(self._dtype)
            elif name == "threshold":
                out[name] = self._threshold_F[start:end].to(self._dtype)
            elif name == "W_dec":
                norms = torch.ones(end - start) if self._scale_F is not None else self.norms()[start:end]
                out[name] = norms[:, None].to(self._dtype)
            else:
                raise SAEError(
                    f"{self._spec}: a multi-layer dictionary has no {name}", "score it as JumpReLU"
                )
        return out

    def _decoder_row(self, group: LatentGroup, latent: int) -> torch.Tensor:
        """Latent ``latent`` of ``group``'s decoder as one ``[d_out]`` row (summed over layers, or the last)."""
        from pseval.sae.formats._common import safetensors_header

        rows = []
        for ref in group.decoder:
            d_out = safetensors_header(ref.path)[0][ref.key].shape[-1]
            rows.append(_rows(ref, latent, latent + 1).reshape(-1, d_out))
        if self._rows_mode == "last":
            return rows[-1][-1]
        return torch.cat(rows).sum(0)

    def latent_rows(self, name: str, latents: Sequence[int]) -> torch.Tensor:
        ids = [int(i) for i in latents]
        if name == "W_dec":
            rows = []
            for i in ids:
                group, lo, _ = self._overlapping(i, i + 1)[0]
                rows.append(self._decoder_row(group, lo - group.start))
            width = int(self.cfg.metadata.get("d_model_out") or 0)
            return torch.stack(rows).to(self._dtype) if rows else torch.zeros(0, width, dtype=self._dtype)
        if name != "W_enc":
            raise SAEError(
                f"{self._spec}: a multi-layer dictionary has no {name} rows", "ask for W_enc or W_dec"
            )
        out = torch.zeros(len(ids), self.cfg.d_in, dtype=torch.float32)
        for group in self.groups:
            mine = [
                (j, i - group.start)
                for j, i in enumerate(ids)
                if group.start <= i < group.start + group.d_sae
            ]
            if not mine:
                continue
            for offset, encoder in group.encoders:
                found = self._part(encoder).latent_rows("W_enc", [local for _, local in mine])
                out[[j for j, _ in mine], offset : offset + encoder.d_in] = found.float()
        return out.to(self._dtype)


def _source(
    dictionary: MultiLayerDictionary,
    name: str,
    groups: Sequence[LatentGroup],
    hooks: Sequence[str],
    scaled: bool,
    view: dict[str, Any],
) -> SAESource:
    d_in = sum(e.d_in for e in dictionary.encoders if e.hook in hooks)
    d_sae = sum(g.d_sae for g in groups)
    d_out = dictionary.metadata.get("d_model_out")
    metadata = {
        **dictionary.metadata,
        "source": str(dictionary.path),
        "source_format": dictionary.format,
        "multilayer": {"kind": dictionary.kind, **view, "scaled_by_decoder_norm": scaled},
        "d_model_out": d_out,
    }
    cfg = JumpReLUSAEConfig(
        d_in=d_in,
        d_sae=d_sae,
        apply_b_dec_to_input=False,
        normalize_activations="none",
        hook_name=join_hooks(list(hooks)),
        model_name=dictionary.model_name,
        metadata=metadata,
    )
    weights = {ref.path for g in groups for _, e in g.encoders for ref in (e.w_enc, *e.decoder)}
    configs = {p for p in dictionary.files if p.suffix != ".safetensors"}
    files = tuple(sorted(weights | configs))
    rows_mode = dictionary.decoder_rows

    def blocks(dtype: str | None) -> MultiLayerBlocks:
        return MultiLayerBlocks(cfg, groups, scaled, rows_mode, dtype)

    def no_load(_dtype: str | None) -> Any:
        raise SAEError(
            f"{name}: a {dictionary.kind} view is scored block by block and cannot be loaded as one SAE",
            "leave out --standard-metrics-tokens (and --controls) for cross-layer dictionaries",
        )

    encoders = [e for g in groups for _, e in g.encoders]
    return SAESource(
        spec=name,
        cfg=cfg,
        format=dictionary.format,
        path=dictionary.path,
        files=files,
        builder=no_load,
        conversion=f"multilayer:{dictionary.kind}:{sorted(view.items())}:scaled={scaled}",
        block_reader=blocks,
        parts=tuple(check_source(e, name) for e in encoders),
    )


def per_layer_source(dictionary: MultiLayerDictionary, layer: int) -> SAESource:
    """Layer ``layer``'s encoder on its own input, its latents as stored (not scaled)."""
    encoder = dictionary.encoder_for_layer(layer)
    group = LatentGroup(0, encoder.d_sae, ((0, encoder),), encoder.decoder)
    return _source(
        dictionary,
        f"{dictionary.name}_layer_{layer}",
        [group],
        [encoder.hook],
        False,
        {"view": "per_layer", "layer": layer},
    )


def global_source(dictionary: MultiLayerDictionary, upto: int | None = None) -> SAESource:
    """Every latent of the source layers up to ``upto`` (default: all) at once, scaled by decoder norms.

    Each latent reads one layer's input. A crosscoder's views are over its own layers (not contiguous),
    so ``upto`` must then be left out: its global view is all of them.
    """
    if dictionary.kind == "crosscoder" and upto is not None and upto != dictionary.encoders[-1].layer:
        raise SAEError(
            f"{dictionary.path}: a crosscoder's global view covers all its layers",
            "score its global view whole",
        )
    last = dictionary.encoders[-1].layer if upto is None else upto
    chosen = [e for e in dictionary.encoders if e.layer <= last]
    wanted = set(range(last + 1)) if dictionary.kind == "clt" else {e.layer for e in dictionary.encoders}
    missing = sorted(wanted - {e.layer for e in chosen})
    if missing:
        raise SAEError(
            f"{dictionary.path} has no encoder for layers {missing}, which the global view up to layer {last} reads",
            "download every params_layer file up to that layer",
        )
    groups, start = [], 0
    for offset, encoder in zip(_offsets(chosen), chosen, strict=True):
        groups.append(LatentGroup(start, encoder.d_sae, ((offset, encoder),), encoder.decoder))
        start += encoder.d_sae
    name = (
        f"{dictionary.name}_global" if dictionary.kind == "crosscoder" else f"{dictionary.name}_global_{last}"
    )
    return _source(
        dictionary, name, groups, [e.hook for e in chosen], True, {"view": "global", "up_to_layer": last}
    )


def _offsets(encoders: Sequence[LayerEncoder]) -> list[int]:
    out, at = [], 0
    for encoder in encoders:
        out.append(at)
        at += encoder.d_in
    return out
