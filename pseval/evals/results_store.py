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
share a result file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pseval.errors import ConfigError
from pseval.evals.schema import EVAL_TYPE_ID, PSEvalResult

IDENTITY_VERSION = 1
"""Bumped when the meaning of a stored identity changes."""

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


def result_path(output_folder: str | Path, name: str) -> Path:
    """SAEBench's layout: ``<output>/ps_eval/<name>_eval_results.json``."""
    return Path(output_folder) / EVAL_TYPE_ID / f"{name}_eval_results.json"


def name_candidates(base: str, path: str | None, sanitize: Any) -> list[str]:
    """File stems an SAE may use, most readable first: its name, then with parent folders, then a path hash."""
    if path is None or path.startswith("saelens:"):
        return [base] + ([f"{base}-{hashlib.sha256(path.encode()).hexdigest()[:8]}"] if path else [])
    parents = Path(path).parent.parts[::-1]
    candidates = [base]
    prefix = base
    for part in parents[:2]:
        if part in ("/", ""):
            break
        prefix = sanitize(f"{part}_{prefix}")
        candidates.append(prefix)
    candidates.append(f"{base}-{hashlib.sha256(path.encode()).hexdigest()[:8]}")
    return list(dict.fromkeys(candidates))


def read_stored(path: Path) -> PSEvalResult:
    """The result stored at ``path``; ConfigError when the file is not a readable PS-Eval result."""
    try:
        return PSEvalResult.model_validate_json(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ConfigError(
            f"{path} is not a readable PS-Eval result ({first})",
            "move that file away, or pass another --output-folder",
        ) from None


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


def check_stored(path: Path, identity: dict[str, Any]) -> PSEvalResult | None:
    """The stored result when it has this identity; ``None`` when there is none; ConfigError when it differs."""
    if not path.exists():
        return None
    stored = read_stored(path)
    if stored.result_identity is None:
        raise ConfigError(
            f"{path} holds a result from an older pseval that does not record which SAE weights it scored",
            "pass --force-rerun to replace it, or another --output-folder to keep it",
        )
    difference = identity_difference(stored.result_identity, identity)
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
