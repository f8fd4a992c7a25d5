"""Fixtures for runner and CLI tests: a tiny model saved as a local folder, a tiny dataset, tiny SAEs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae
from pseval.sae.model import SAE
from tests.helpers import tiny_model, tiny_tokenizer

# Pairs over words of the tiny tokenizer's vocabulary (each word is one token). Spans point at the word.
_PAIRS = [
    ("bank", "he sat on the bank of the river", "the bank was by the water", 1),
    ("bank", "he sat on the bank of the river", "money in the bank", 0),
    ("bark", "the dog bark was fast", "the tree bark was green", 0),
    ("play", "they play the game", "we play the game at night", 1),
    ("play", "they play the game", "the play was bright", 0),
    ("spring", "the spring season was green", "the spring in the coil", 0),
    ("light", "the light was bright", "a bright light at night", 1),
    ("match", "a fire match", "the match was a game", 0),
    ("date", "a date fruit", "the date of the meeting", 0),
    ("party", "a political party", "the party was fair", 1),
    ("rose", "the rose was a flower", "a green rose", 1),
    ("bat", "the bat was an animal", "the bat and ball", 0),
]


def _span(text: str, word: str) -> list[int]:
    start = f" {text} ".index(f" {word} ")
    return [start, start + len(word)]


@pytest.fixture(scope="session")
def tiny_dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A .jsonl dataset of 12 test pairs (5 same, 7 different meaning) in the tiny vocabulary, plus 6 dev pairs."""
    path = tmp_path_factory.mktemp("data") / "tiny_pairs.jsonl"
    rows = []
    for i, (word, c1, c2, label) in enumerate(_PAIRS):
        rows.append(
            {
                "id": f"tiny-test-{i:02d}",
                "word": word,
                "pos": "N",
                "context_1": c1,
                "context_2": c2,
                "span_1": _span(c1, word),
                "span_2": _span(c2, word),
                "label": label,
                "source": "tiny",
                "split": "test",
            }
        )
    # Held-out pairs for the dense baseline's threshold.
    for i, (word, c1, c2, label) in enumerate(_PAIRS[:6]):
        rows.append(
            {
                "id": f"tiny-dev-{i:02d}",
                "word": word,
                "pos": "V",
                "context_1": c2,
                "context_2": c1,
                "span_1": _span(c2, word),
                "span_2": _span(c1, word),
                "label": label,
                "source": "tiny",
                "split": "dev",
            }
        )
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama (3 layers, d_model 32) saved with its tokenizer as a local model folder."""
    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    model = tiny_model("llama", n_layers=3, d_model=32)
    model.save_pretrained(folder)
    tiny_tokenizer().save_pretrained(folder)
    return folder


def make_sae(
    folder: Path,
    architecture: str,
    hook: str,
    d_in: int = 32,
    d_sae: int = 64,
    seed: int = 0,
    model_name: str | None = "tiny-llama",
) -> Path:
    """Write a random SAELens-format SAE (trained on ``model_name``, by default the tiny model's folder name)."""
    fields: dict[str, object] = {
        "architecture": architecture,
        "d_in": d_in,
        "d_sae": d_sae,
        "hook_name": hook,
        "model_name": model_name,
    }
    if architecture == "topk":
        fields["k"] = 4
    sae = SAE.create_random(config_from_dict(fields), seed=seed)
    save_sae(sae, folder, overwrite=True)
    return folder
