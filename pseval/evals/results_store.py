"""Which result file an SAE's result goes to, and whether the one there is already this result.

A result is identified by what was evaluated: the SAE's content hash (weights and config), the model, the
hook, the input regime, the settings that change the numbers (:meth:`PSEvalConfig.identity`) and the
content hash of the dataset's files (a rebuilt or edited dataset is another dataset; results stored before
the hash was recorded are taken to be of the files in :data:`DATASET_SHA256_BEFORE_RECORDED`). A rerun
with the same identity is skipped; a file holding a result of another identity is never replaced silently:
the run stops before the model loads, naming what differs, unless ``--force-rerun``.

File names: an SAE folder ``runs/A/sae`` is called ``sae``. When ``sae_eval_results.json`` already holds
the result of another SAE (another path), or another SAE of the same run took that name, the parent folders
are added (``A_sae``, then ``runs_A_sae``), then a hash of the path, so SAEs that share a folder name never
share a result file. A name too long for a file name (most file systems allow 255 bytes) is cut and ends in a
hash of the whole name, so long folder names neither collide nor fail when the result is written.

Every file is written with its checksum (:func:`pseval.evals.schema.result_checksum`) and checked against it
when read back: a result edited by hand is never skipped as finished nor shown as a result.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pseval._io import write_json_atomic
from pseval.errors import ConfigError
from pseval.evals.schema import (
    EVAL_TYPE_ID,
    PSEvalResult,
    checksum_mismatch,
    edited_problem,
    result_checksum,
)

IDENTITY_VERSION = 3
"""Bumped when the meaning of a stored identity changes. 3: ``sae_content_hash`` and ``sae_decoder_hash`` are
xxh3 hashes (:data:`pseval.sae.source.BYTES_HASH`), of the same bytes as in 2; 2: ``sae_content_hash`` hashes
(sha256) the bytes scoring reads whole and the decoder's place only
(:meth:`pseval.sae.source.SAESource.content_hash`), the decoder's bytes being covered by ``sae_decoder_hash`` or
:data:`DECODER_ROWS_KEY`; 1 hashed (sha256) every byte."""

DECODER_ROWS_KEY = "sae_decoder_rows_hash"
"""The identity key of the decoder rows a result's scores read (its chosen latents' rows), added once scored:
the rest of the decoder is not read unless a metric reads it whole (``sae_decoder_hash`` then)."""

SAE_IDENTITY_KEYS = ("sae_content_hash", "sae_decoder_hash", DECODER_ROWS_KEY)
"""The identity keys of the SAE's own weights (the rest say how it was evaluated)."""

DATASET_HASH_KEY = "dataset_sha256"
"""The identity key of the dataset's content (:func:`pseval.data.datasets.dataset_sha256`)."""

#: The content of the shipped datasets when identities did not record it yet: a result stored without
#: ``dataset_sha256`` was computed on these files. ``wordnet-2x2`` has been rebuilt since (its cells were
#: repaired), so such results of it are of another dataset; a ``.jsonl`` path's old content is unknown.
DATASET_SHA256_BEFORE_RECORDED: dict[str, str] = {
    "wic": "996e43c79f5fb99d71e93a808df8810ede93db7ef58d52005b02766b3572e9d2",
    "wordnet": "bf1108f926ff85aadddf4c1aee08db87bc9912c7543db4aaaa0b9967f35ddba0",
    "wordnet-2x2": "48099ac8c05ea5eebf147f05e29e5e0363ae589c838b858166d66c8e315339c1",
}


RESULT_SUFFIX = "_eval_results.json"

MAX_FILE_NAME_BYTES = 200
"""Longest result file name written, with room to spare under the 255 bytes most file systems allow."""


def result_path(output_folder: str | Path, name: str) -> Path:
    """SAEBench's layout: ``<output>/ps_eval/<name>_eval_results.json``."""
    return Path(output_folder) / EVAL_TYPE_ID / f"{name}{RESULT_SUFFIX}"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


def fit_name(stem: str) -> str:
    """``stem`` when its result file name fits :data:`MAX_FILE_NAME_BYTES`, else its start plus a hash of it all."""
    limit = MAX_FILE_NAME_BYTES - len(RESULT_SUFFIX)
    if len(stem.encode("utf-8")) <= limit:
        return stem
    head = stem.encode("utf-8")[: limit - 9].decode("utf-8", errors="ignore").rstrip("_.-+")
    return f"{head}-{_digest(stem)}"


def name_candidates(base: str, path: str | None, sanitize: Any) -> list[str]:
    """File stems an SAE may use, most readable first: its name, then with parent folders, then a path hash."""
    if path is None or path.startswith("saelens:"):
        candidates = [base] + ([f"{base}-{_digest(path)}"] if path else [])
    else:
        parents = Path(path).parent.parts[::-1]
        candidates = [base]
        prefix = base
        for part in parents[:2]:
            if part in ("/", ""):
                break
            prefix = sanitize(f"{part}_{prefix}")
            candidates.append(prefix)
        candidates.append(f"{base}-{_digest(path)}")
    return list(dict.fromkeys(fit_name(candidate) for candidate in candidates))


def read_stored(path: Path) -> PSEvalResult:
    """The result stored at ``path``; ConfigError when it is not a readable PS-Eval result or was edited."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        stored = PSEvalResult.model_validate(raw)
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path} is not a readable PS-Eval result ({first})",
            "move that file away, or pass another --output-folder",
        ) from None
    if checksum_mismatch(raw):
        raise ConfigError(edited_problem(path), "pass --force-rerun to recompute it")
    return stored


def write_result(path: Path, result: PSEvalResult) -> PSEvalResult:
    """Write ``result`` atomically with its checksum; return it with the checksum set."""
    payload = result.model_dump(mode="json")
    payload["result_checksum"] = result_checksum(payload)
    write_json_atomic(path, payload)
    return result.model_copy(update={"result_checksum": payload["result_checksum"]})


def choose_name(
    candidates: Sequence[str], sae_path: str | None, output_folder: str | Path | None, taken: set[str]
) -> str:
    """The first candidate not taken in this run whose file is absent or holds a result of the same SAE path."""
    for name in candidates:
        if name in taken:
            continue
        if output_folder is None:
            return name
        path = result_path(output_folder, name)
        if not path.exists():
            return name
        try:
            stored_path = json.loads(path.read_text(encoding="utf-8")).get("sae_path")
        except (OSError, ValueError, AttributeError):
            return name  # unreadable: the identity check reports it
        if stored_path == sae_path:
            return name
    raise ConfigError(
        f"every result file name for the SAE {sae_path or candidates[0]} is taken in {output_folder}",
        "pass another --output-folder",
    )


def _short(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def with_dataset_hash(stored: dict[str, Any]) -> dict[str, Any]:
    """``stored`` with the dataset content hash it implies when it predates recording one (else as is)."""
    if DATASET_HASH_KEY in stored:
        return stored
    return {**stored, DATASET_HASH_KEY: DATASET_SHA256_BEFORE_RECORDED.get(str(stored.get("dataset")))}


def identity_difference(stored: dict[str, Any], current: dict[str, Any]) -> str | None:
    """``None`` when both identities are equal, else a short text naming the first differences."""
    stored = with_dataset_hash(stored)
    keys = [k for k in dict.fromkeys([*current, *stored]) if stored.get(k) != current.get(k)]
    if not keys:
        return None
    parts = []
    for key in keys[:3]:
        if key == "sae_content_hash":
            parts.append(
                f"other SAE weights/config (content hash {stored.get(key)} there, {current.get(key)} now)"
            )
        elif key == DATASET_HASH_KEY:
            there = str(stored.get(key))[:12] if stored.get(key) else "not recorded"
            parts.append(f"other dataset content (sha256 {there} there, {str(current.get(key))[:12]} now)")
        else:
            parts.append(f"{key}: {_short(stored.get(key))} there, {_short(current.get(key))} now")
    more = f" and {len(keys) - 3} more" if len(keys) > 3 else ""
    return "; ".join(parts) + more


def check_stored(
    path: Path,
    identity: dict[str, Any],
    older: Callable[[int], dict[str, Any] | None] | None = None,
    scored: Callable[[PSEvalResult], dict[str, Any]] | None = None,
) -> PSEvalResult | None:
    """The stored result when it has this identity; ``None`` when there is none; ConfigError when it differs.

    ``older(version)`` gives the identity as an earlier :data:`IDENTITY_VERSION` computed it (or None), so a
    result stored by an older pseval is still recognised as finished. ``scored(stored)`` gives the keys known
    only once an SAE is scored (:data:`DECODER_ROWS_KEY`), computed now for what the stored result read, once
    every other key matches.
    """
    if not path.exists():
        return None
    stored = read_stored(path)
    if stored.result_identity is None:
        raise ConfigError(
            f"{path} holds a result from an older pseval that does not record which SAE weights it scored",
            "pass --force-rerun to replace it, or another --output-folder to keep it",
        )
    difference = identity_difference(stored.result_identity, identity)
    known_once_scored = {k: v for k, v in stored.result_identity.items() if k not in identity}
    if (
        scored is not None
        and identity_difference(known_once_scored | identity, stored.result_identity) is None
    ):
        # Only a result of this very SAE and evaluation is read back against the files (its rows exist here).
        difference = identity_difference(stored.result_identity, {**identity, **scored(stored)})
    version = stored.result_identity.get("identity_version")
    if (
        difference is not None
        and older is not None
        and isinstance(version, int)
        and version < IDENTITY_VERSION
    ):
        earlier = older(version)
        if earlier is not None and scored is not None:
            known_then = {k: v for k, v in stored.result_identity.items() if k not in earlier}
            if identity_difference(known_then | earlier, stored.result_identity) is None:
                earlier = {**earlier, **scored(stored)}  # the rows it read, hashed as it hashed them
        if earlier is not None and identity_difference(stored.result_identity, earlier) is None:
            return stored
    if difference is not None:
        raise ConfigError(
            f"{path} holds a result of another configuration ({difference})",
            "pass --force-rerun to replace it, or another --output-folder to keep both",
        )
    return stored


def check_destination(path: Path) -> None:
    """Fail before the model loads when a result file cannot be written where it is to go."""
    if path.exists() and not path.is_file():
        raise ConfigError(f"{path} exists and is not a file", "remove it, or pass another --output-folder")
    if len(path.name.encode("utf-8")) > MAX_FILE_NAME_BYTES:
        raise ConfigError(
            f"the result file name {path.name} is longer than {MAX_FILE_NAME_BYTES} bytes",
            "give the SAE a shorter name",
        )
