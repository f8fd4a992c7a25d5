"""File reading and SAE assembly shared by the format readers.

Readers work in two steps so that an SAE can be validated before any weight is read:
:func:`resolve` builds the config from the config fields and the tensor *shapes* (safetensors headers,
memory-mapped torch files), and :func:`materialise` turns the tensors, read later, into an :class:`SAE`.
"""

from __future__ import annotations

import json
import logging
import pickle
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pseval.errors import ConfigError, SAEError
from pseval.sae.config import NORMALIZE_ACTIVATIONS, SAEConfig, config_from_dict
from pseval.sae.model import SAE

logger = logging.getLogger(__name__)

SAELENS_TRANSCODERS: dict[str, tuple[str, bool]] = {
    "transcoder": ("standard", False),
    "skip_transcoder": ("standard", True),
    "jumprelu_transcoder": ("jumprelu", False),
    "jumprelu_skip_transcoder": ("jumprelu", True),
}
"""SAELens transcoder architectures -> (pseval architecture of the encoder side, has a skip connection);
shared by the SAELens reader and the sae-lens fallback."""

SAELENS_BATCHTOPK_TRAINING = ("batchtopk", "matryoshka_batchtopk")
"""Training architectures SAELens saves for inference as JumpReLU with a global threshold."""

DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
}

_SAFETENSORS_DTYPES: dict[str, torch.dtype] = {
    "F64": torch.float64,
    "F32": torch.float32,
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "I64": torch.int64,
    "I32": torch.int32,
    "I16": torch.int16,
    "I8": torch.int8,
    "U8": torch.uint8,
    "BOOL": torch.bool,
}

Shape = tuple[int, ...]


def check_dtype(dtype: str | None) -> str | None:
    """``dtype`` without a ``torch.`` prefix, or SAEError when it is not a float dtype pseval supports."""
    if dtype is None:
        return None
    dtype = str(dtype).removeprefix("torch.")
    if dtype not in DTYPE_NAMES.values():
        raise SAEError(f"unknown dtype {dtype!r}", f"use one of {', '.join(DTYPE_NAMES.values())}")
    return dtype


def check_finite(sae: torch.nn.Module, where: str, block_elements: int = 1 << 24) -> None:
    """SAEError naming the first tensor of ``sae`` that holds NaN or Inf (checked in bounded blocks)."""
    for name, t in sae.state_dict().items():
        if not t.is_floating_point():
            continue
        flat = t.detach().reshape(-1)
        for start in range(0, flat.numel(), block_elements):
            block = flat[start : start + block_elements]
            if not bool(torch.isfinite(block).all()):
                kind = "NaN" if bool(torch.isnan(block).any()) else "Inf"
                raise SAEError(
                    f"SAE {where}: tensor {name} holds non-finite values ({kind})",
                    "the weights are corrupt or training diverged; re-download or retrain the SAE",
                )


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__


# ==================================================================================================
# reading files
# ==================================================================================================


def read_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; SAEError when missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise SAEError(
            f"{path} is not valid JSON ({exc})", "the file is corrupt or truncated; re-download or re-save it"
        ) from None
    except OSError as exc:
        raise SAEError(
            f"cannot read {path} ({exc.strerror or exc})", "check the file's permissions"
        ) from None
    if not isinstance(data, dict):
        raise SAEError(
            f"{path} holds a JSON {type(data).__name__}, not an object", "re-download or re-save it"
        )
    return data


@dataclass(frozen=True)
class HeaderEntry:
    """One tensor of a safetensors header."""

    dtype: torch.dtype
    shape: Shape
    begin: int  # byte offsets relative to the start of the data section
    end: int


def safetensors_header(path: Path) -> tuple[dict[str, HeaderEntry], int]:
    """The tensors listed in ``path``'s header and the byte offset of its data section (no data is read)."""
    bad = SAEError(
        f"{path} is not a readable safetensors file",
        "the file is corrupt or truncated; re-download or re-save it",
    )
    try:
        size = path.stat().st_size
        with path.open("rb") as fh:
            raw = fh.read(8)
            if len(raw) != 8:
                raise bad
            n = int.from_bytes(raw, "little")
            if n <= 0 or 8 + n > size:
                raise bad
            header = json.loads(fh.read(n).decode("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise bad from None
    if not isinstance(header, dict):
        raise bad
    entries: dict[str, HeaderEntry] = {}
    data_bytes = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        stored_as = info.get("dtype") if isinstance(info, dict) else None
        if isinstance(stored_as, str) and stored_as not in _SAFETENSORS_DTYPES:
            raise SAEError(
                f"{path}: tensor {name} is stored as {stored_as}, which pseval does not read",
                "re-save the SAE with float32 (or bfloat16, float16) tensors",
            )
        try:
            dtype = _SAFETENSORS_DTYPES[info["dtype"]]
            begin, end = (int(v) for v in info["data_offsets"])
            shape = tuple(int(v) for v in info["shape"])
        except (KeyError, TypeError, ValueError):
            raise bad from None
        if end > data_bytes:
            raise SAEError(
                f"{path} is corrupt or truncated (tensor {name} ends past the end of the file)",
                "re-download or re-save it",
            )
        entries[name] = HeaderEntry(dtype, shape, begin, end)
    return entries, 8 + n


def header_shapes_and_dtypes(path: Path) -> tuple[dict[str, Shape], dict[str, torch.dtype]]:
    """Tensor shapes and dtypes of a safetensors file, from its header."""
    entries, _ = safetensors_header(path)
    return {k: e.shape for k, e in entries.items()}, {k: e.dtype for k, e in entries.items()}


def read_safetensors(path: Path, keys: set[str] | None = None) -> dict[str, torch.Tensor]:
    """The tensors of ``path``, memory-mapped (copy-on-write) so no weight is read until it is used."""
    entries, data_start = safetensors_header(path)
    try:
        storage = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
    except (OSError, RuntimeError) as exc:
        raise SAEError(
            f"cannot memory-map {path} ({first_line(exc)})", "check the file's permissions"
        ) from None
    whole = torch.empty(0, dtype=torch.uint8).set_(storage)  # type: ignore[arg-type]
    out: dict[str, torch.Tensor] = {}
    for name, entry in entries.items():
        if keys is not None and name not in keys:
            continue
        begin = data_start + entry.begin
        raw = whole[begin : data_start + entry.end]
        itemsize = torch.empty(0, dtype=entry.dtype).element_size()
        if begin % itemsize == 0:
            out[name] = raw.view(entry.dtype).reshape(entry.shape)
        else:  # unaligned tensor: copy it
            out[name] = raw.clone().view(entry.dtype).reshape(entry.shape)
    return out


def read_torch_file(path: Path, what: str = "state dict") -> dict[str, Any]:
    """A torch-saved dict of tensors, memory-mapped when the file allows it (weights only, never pickles)."""
    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc) and "zip" not in str(exc):
                raise
            obj = torch.load(str(path), map_location="cpu", weights_only=True)  # legacy (non-zip) file
    except pickle.UnpicklingError as exc:
        raise SAEError(
            f"{path} holds pickled Python objects, not a plain {what} ({first_line(exc)})",
            "re-save it with torch.save(module.state_dict(), PATH)",
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, zipfile.BadZipFile) as exc:
        raise SAEError(
            f"{path} is not a readable torch file ({first_line(exc)})",
            "the file is corrupt or truncated; re-download or re-save it",
        ) from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise SAEError(
            f"{path} does not hold a {what} of tensors", "re-save it with torch.save(state_dict, PATH)"
        )
    return dict(obj)


def read_npz(path: Path) -> dict[str, torch.Tensor]:
    """Arrays of an ``.npz`` file, ``w_*`` keys renamed ``W_*``."""
    try:
        with np.load(str(path), allow_pickle=False) as data:
            arrays = {key: np.asarray(data[key]) for key in data.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SAEError(
            f"{path} is not a readable .npz file ({first_line(exc)})",
            "the file is corrupt or truncated; re-download it",
        ) from None
    out: dict[str, torch.Tensor] = {}
    for key, array in arrays.items():
        name = "W_" + key[2:] if key.startswith("w_") else key
        out[name] = torch.from_numpy(np.ascontiguousarray(array))
    return out


def npz_shapes_and_dtypes(path: Path) -> tuple[dict[str, Shape], dict[str, torch.dtype]]:
    """Array shapes and dtypes of an ``.npz`` from the member headers (no array data read), ``w_*`` renamed
    ``W_*``; SAEError for an array numpy stores as something torch cannot hold (strings, objects)."""
    shapes: dict[str, Shape] = {}
    dtypes: dict[str, torch.dtype] = {}
    try:
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if not member.endswith(".npy"):
                    continue
                with zf.open(member) as fh:
                    major, _minor = np.lib.format.read_magic(fh)
                    if major == 1:
                        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
                    else:
                        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
                key = member[: -len(".npy")]
                name = "W_" + key[2:] if key.startswith("w_") else key
                shapes[name] = tuple(int(v) for v in shape)
                try:
                    dtypes[name] = torch.from_numpy(np.zeros(0, dtype=dtype)).dtype
                except TypeError:
                    raise SAEError(
                        f"{path}: array {key} is stored as {np.dtype(dtype)}, not as numbers",
                        "use a Gemma Scope params.npz, or re-save the arrays as float32",
                    ) from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise SAEError(
            f"{path} is not a readable .npz file ({first_line(exc)})",
            "the file is corrupt or truncated; re-download it",
        ) from None
    return shapes, dtypes


def check_normalize(value: Any, where: str) -> str:
    """``normalize_activations`` as SAELens 6 spells it (pre-6 booleans mapped)."""
    if value is None or value is False:
        return "none"
    if value is True:
        return "expected_average_only_in"
    if value not in NORMALIZE_ACTIVATIONS:
        raise SAEError(
            f"{where}: normalize_activations={value!r} is not supported",
            f"use an SAE with normalize_activations in {', '.join(NORMALIZE_ACTIVATIONS)} "
            "(or fold it into the weights)",
        )
    return str(value)


# ==================================================================================================
# resolving the config from shapes, then materialising the SAE
# ==================================================================================================


@dataclass(frozen=True)
class Plan:
    """A validated config and how the stored matrices are oriented."""

    cfg: SAEConfig
    transposed: dict[str, bool]  # W_enc / W_dec stored as the transpose of pseval's orientation


def _agree(name: str, values: dict[str, int], where: str) -> int | None:
    distinct = sorted(set(values.values()))
    if len(distinct) > 1:
        listed = ", ".join(f"{k}={v}" for k, v in values.items())
        raise SAEError(
            f"inconsistent {name} in {where}: {listed}",
            "the config does not match the weights; fix or re-save the SAE",
        )
    return distinct[0] if distinct else None


def _numel(shape: Shape) -> int:
    n = 1
    for v in shape:
        n *= v
    return n


def _orientation(name: str, shape: Shape, rows: int, cols: int, where: str) -> bool:
    """Whether a matrix of ``shape`` is the transpose of ``[rows, cols]``; SAEError when it is neither."""
    if len(shape) == 2 and shape == (rows, cols):
        return False
    if len(shape) == 2 and shape == (cols, rows):
        logger.info(
            "%s in %s is stored transposed (%s); transposing to [%d, %d]",
            name,
            where,
            list(shape),
            rows,
            cols,
        )
        return True
    raise SAEError(
        f"{name} in {where} has shape {list(shape)}, which fits neither [{rows}, {cols}] nor its transpose",
        "the weights do not match d_in/d_sae; check the config or re-save the SAE",
    )


def _other_dim(shape: Shape, known: int, known_name: str, where: str) -> int:
    a, b = shape
    if a == known:
        return b
    if b == known:
        return a
    raise SAEError(
        f"W_enc in {where} has shape {[a, b]}, which has no dimension equal to {known_name}={known}",
        "the weights do not match the config; check it or re-save the SAE",
    )


def _dimensions(
    fields: dict[str, Any], shapes: Mapping[str, Shape], enc: Shape, dec: Shape, where: str
) -> tuple[int, int]:
    """``d_in`` and ``d_sae`` from the config and the bias lengths (which must agree), else from ``W_enc``."""
    d_in_votes: dict[str, int] = (
        {"config d_in": int(fields["d_in"])} if fields.get("d_in") is not None else {}
    )
    if "b_dec" in shapes:
        d_in_votes["b_dec length"] = _numel(shapes["b_dec"])
    d_sae_votes: dict[str, int] = (
        {"config d_sae": int(fields["d_sae"])} if fields.get("d_sae") is not None else {}
    )
    for name in ("b_enc", "threshold", "b_gate", "b_mag", "r_mag"):
        if name in shapes and len(shapes[name]) == 1:
            d_sae_votes[f"{name} length"] = _numel(shapes[name])
    d_in = _agree("d_in", d_in_votes, where)
    d_sae = _agree("d_sae", d_sae_votes, where)
    if d_in is None and d_sae is None:
        if enc == dec and enc[0] != enc[1]:
            raise SAEError(
                f"{where}: W_enc and W_dec both have shape {list(enc)} and no bias or config gives "
                "d_in/d_sae, so their orientation is ambiguous",
                "add d_in and d_sae to the config",
            )
        d_in, d_sae = enc
    elif d_in is None:
        assert d_sae is not None
        d_in = _other_dim(enc, d_sae, "d_sae", where)
    elif d_sae is None:
        d_sae = _other_dim(enc, d_in, "d_in", where)
    return d_in, d_sae


def resolve(
    fields: dict[str, Any],
    shapes: Mapping[str, Shape],
    where: str,
    stored_dtype: torch.dtype | None = None,
    dtypes: Mapping[str, torch.dtype] | None = None,
) -> Plan:
    """Validate config ``fields`` against tensor ``shapes`` and ``dtypes`` (pseval names, file orientation).

    ``d_in``/``d_sae`` come from the config and the bias lengths, which must agree; when neither is known the
    matrices decide, and two matrices of the same non-square shape (one of them transposed, but which?) are
    refused as ambiguous. The tensors must be exactly those the architecture needs (``b_dec`` may be absent:
    zero) and floating point, so that no file that cannot be this SAE gets past opening.
    """
    check_floating(dtypes or {}, where)
    missing = [n for n in ("W_enc", "W_dec") if n not in shapes]
    if missing:
        raise SAEError(
            f"{where} has no {' or '.join(missing)} tensor", "check that the file is a complete SAE"
        )
    enc, dec = tuple(shapes["W_enc"]), tuple(shapes["W_dec"])
    if len(enc) != 2 or len(dec) != 2:
        raise SAEError(
            f"{where}: W_enc {list(enc)} and W_dec {list(dec)} must both be matrices",
            "check that the file is a complete SAE",
        )
    d_in, d_sae = _dimensions(fields, shapes, enc, dec, where)
    transposed = {
        "W_enc": _orientation("W_enc", enc, d_in, d_sae, where),
        "W_dec": _orientation("W_dec", dec, d_sae, d_in, where),
    }
    for name, shape in shapes.items():
        if name in transposed:
            continue
        n = _numel(shape)
        if name == "threshold" and n == 1:
            continue  # one threshold for every latent
        length = d_in if name == "b_dec" else d_sae
        if n != length or len(shape) > 1:
            raise SAEError(
                f"{name} in {where} has shape {list(shape)}, expected [{length}]",
                "the weights do not match d_in/d_sae; check the config or re-save the SAE",
            )
    stored_name = DTYPE_NAMES.get(stored_dtype, "float32") if stored_dtype is not None else "float32"
    cfg_dtype = fields.get("dtype") or stored_name
    cfg_fields = {
        **fields,
        "d_in": d_in,
        "d_sae": d_sae,
        "dtype": str(cfg_dtype).removeprefix("torch."),
    }
    try:
        cfg = config_from_dict(cfg_fields)
    except ConfigError as exc:
        raise SAEError(f"{where}: {exc.problem}", exc.fix) from None
    _check_tensor_names(cfg, set(shapes), where)
    return Plan(cfg, transposed)


def check_floating(dtypes: Mapping[str, torch.dtype], where: str) -> None:
    """SAEError naming the weight tensors that are not floating point (int32 weights would otherwise be cast to
    float silently and give meaningless latents)."""
    bad = sorted(name for name, dtype in dtypes.items() if not dtype.is_floating_point)
    if bad:
        stored = ", ".join(sorted({str(dtypes[name]).removeprefix("torch.") for name in bad}))
        raise SAEError(
            f"{where}: tensor{'s' if len(bad) > 1 else ''} {', '.join(bad)} "
            f"{'are' if len(bad) > 1 else 'is'} stored as {stored}, not as floating point",
            "the file is not an SAE's weights or was saved wrongly; re-save it with float32 (or bfloat16, "
            "float16) tensors",
        )


def _check_tensor_names(cfg: SAEConfig, names: set[str], where: str) -> None:
    expected = {"W_enc", "W_dec", "b_dec", *cfg.extra_parameters}
    missing = sorted(expected - names - {"b_dec"})
    if missing:
        listed = " and ".join(missing)
        raise SAEError(
            f"{where}: a {cfg.architecture} SAE needs the tensor{'s' if len(missing) > 1 else ''} {listed}, "
            "which its weights lack",
            f"use the complete weights file, or set the architecture the weights were trained with in the config "
            f"(it says {cfg.architecture})",
        )
    unexpected = sorted(names - expected)
    if unexpected:
        raise SAEError(
            f"{where}: unexpected tensors {', '.join(unexpected)} for a {cfg.architecture} SAE",
            f"set the architecture the weights were trained with in the config (it says {cfg.architecture})",
        )


def materialise(plan: Plan, tensors: dict[str, torch.Tensor], dtype: str | None = None) -> SAE:
    """The SAE of ``plan`` from ``tensors`` (pseval names, file orientation), cast to ``dtype`` if given."""
    cfg = plan.cfg.model_copy(deep=True)
    if dtype is not None:
        cfg.dtype = dtype  # type: ignore[assignment]
    d_in, d_sae = cfg.d_in, cfg.d_sae
    state: dict[str, torch.Tensor] = {}
    for name, t in tensors.items():
        if plan.transposed.get(name, False):
            t = t.T
        elif name == "threshold" and t.numel() == 1 and d_sae != 1:
            t = t.reshape(()).expand(d_sae)
        elif t.ndim != 1 and name not in ("W_enc", "W_dec"):
            t = t.reshape(-1)
        state[name] = t
    if "b_dec" not in state:
        state["b_dec"] = torch.zeros(d_in)
    return SAE.from_state_dict(cfg, state, assign=True)


def assemble(fields: dict[str, Any], tensors: dict[str, torch.Tensor], where: str, dtype: str | None) -> SAE:
    """:func:`resolve` then :func:`materialise`, for tensors already in memory."""
    stored = next((t.dtype for t in tensors.values() if t.is_floating_point()), None)
    shapes = {k: tuple(v.shape) for k, v in tensors.items()}
    plan = resolve(fields, shapes, where, stored, {k: v.dtype for k, v in tensors.items()})
    return materialise(plan, tensors, dtype)


# ==================================================================================================
# transcoders
# ==================================================================================================


def transcoder_metadata(
    d_in: int, d_out: int | None, hook_name_out: str | None, skip: bool, where: str
) -> dict[str, Any]:
    """``metadata["transcoder"]`` of a transcoder read at its input hook (encoder side); SAEError when its
    output width differs from its input width, which pseval's SAE cannot hold."""
    if d_out is not None and int(d_out) != int(d_in):
        raise SAEError(
            f"{where} is a transcoder from width {d_in} to width {d_out}; pseval holds transcoders whose "
            "output width equals their input width only",
            "use a transcoder between hooks of the same width, or an SAE",
        )
    return {
        "transcoder": {
            "hook_name_out": hook_name_out,
            "d_out": int(d_out) if d_out is not None else int(d_in),
            "skip_connection": skip,
            "reads": "encoder side at the input hook; decode() predicts the output hook, not the input",
        }
    }


def is_transcoder(metadata: Mapping[str, Any]) -> bool:
    """Whether an SAE config's metadata marks a transcoder (its decoder predicts another hook)."""
    return isinstance(metadata.get("transcoder"), Mapping)
