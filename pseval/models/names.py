"""Which names denote one language model, so an SAE trained on one model is not scored on another unnoticed.

An SAE records the model it was trained on (``cfg.model_name``) under whatever name its trainer used: a
Hugging Face id (``google/gemma-3-270m``), a TransformerLens name (``gpt2-small``, ``gemma-2-2b``), a pseval
alias (``smollm2-135m``), a GGUF export folder in the pseval cache, or a local folder. :func:`same_model`
tells whether such a name and the ``--model`` of a run denote the same weights:

1. pseval's aliases (:data:`pseval.models.loading.MODEL_ALIASES`) are resolved; a packaged GGUF model is
   known by its export folder's name;
2. a local path counts by its folder name (a Hugging Face cache snapshot by its ``org/name``);
3. the names of :data:`KNOWN_MODELS` map to their Hugging Face id;
4. two names neither of which is known match when their last ``/`` component agrees, case aside
   (``Qwen/Qwen3-1.7B`` and ``qwen3-1.7b``); a known model never matches another name that way, so
   ``HuggingFaceTB/SmolLM2-135M`` (the base model) does not pass for ``smollm2-135m`` (the Instruct one).
"""

from __future__ import annotations

import re
from pathlib import Path

KNOWN_MODELS: dict[str, tuple[str, ...]] = {
    "HuggingFaceTB/SmolLM2-135M-Instruct": ("smollm2-135m", "smollm2-135m-instruct"),
    "google/gemma-3-270m": ("gemma3-270m", "gemma-3-270m", "gemma-3-270m-pt", "gemma-v3-270m-pt"),
    "openai-community/gpt2": ("gpt2", "gpt2-small"),
    "EleutherAI/pythia-70m-deduped": ("pythia-70m-deduped", "pythia-70m"),
    "google/gemma-2-2b": ("gemma-2-2b",),
}
"""Hugging Face id -> the other names of the same weights (pseval aliases, TransformerLens names, export
folders). Base and instruction-tuned models are different weights and never share an entry."""

_CANONICAL: dict[str, str] = {
    name.lower(): model_id.lower() for model_id, names in KNOWN_MODELS.items() for name in (model_id, *names)
}
_HUB_URL = re.compile(r"^https?://huggingface\.co/", re.IGNORECASE)
_HF_CACHE_FOLDER = re.compile(r"^models--(.+?)--(.+)$")


def _looks_like_path(text: str) -> bool:
    return text.startswith((".", "/", "~")) or "\\" in text or text.count("/") > 1 or Path(text).exists()


def _path_name(text: str) -> str:
    """The model name a local path stands for: its Hugging Face cache ``org/name``, else its folder name."""
    path = Path(text).expanduser()
    for part in reversed(path.parts):
        match = _HF_CACHE_FOLDER.match(part)
        if match is not None:
            return f"{match.group(1)}/{match.group(2)}"
    return path.stem if path.suffix == ".gguf" else path.name


def model_key(name: str) -> str:
    """A lower-case key equal for names of the same weights (a Hugging Face id for :data:`KNOWN_MODELS`)."""
    from pseval.models.loading import GGUFSource, _resolve_alias

    text = _HUB_URL.sub("", name.strip()).rstrip("/")
    source = _resolve_alias(text)
    text = source.export_name if isinstance(source, GGUFSource) else source
    if _looks_like_path(text):
        text = _path_name(text)
    key = text.lower()
    return _CANONICAL.get(key, key)


def same_model(name_a: str, name_b: str) -> bool:
    """Whether two model names denote the same weights (see the module docstring for the rules)."""
    key_a, key_b = model_key(name_a), model_key(name_b)
    if key_a == key_b:
        return True
    known = set(_CANONICAL.values())
    if key_a in known or key_b in known:
        return False
    return key_a.rsplit("/", 1)[-1] == key_b.rsplit("/", 1)[-1]


def suggested_model_option(name: str) -> str:
    """How to pass the model ``name`` denotes with ``--model``: a pseval alias when one exists."""
    from pseval.models.loading import MODEL_ALIASES

    key = model_key(name)
    return next((alias for alias in MODEL_ALIASES if model_key(alias) == key), name)


__all__ = ["KNOWN_MODELS", "model_key", "same_model", "suggested_model_option"]
