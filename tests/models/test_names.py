"""Which model names denote the same weights (the guard against scoring an SAE on another model)."""

from __future__ import annotations

from pathlib import Path

import pytest

from pseval.models.names import model_key, same_model, suggested_model_option


@pytest.mark.parametrize(
    ("name_a", "name_b"),
    [
        ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct"),
        ("smollm2-135m", "SmolLM2-135M-Instruct"),
        ("smollm2-135m", "/home/u/.cache/pseval/models/smollm2-135m-instruct"),
        ("gemma3-270m", "google/gemma-3-270m"),
        ("gemma-3-270m", "gemma3-270m"),
        ("gpt2-small", "https://huggingface.co/gpt2"),
        ("gpt2", "/hf/hub/models--openai-community--gpt2/snapshots/0123abcd"),
        ("Qwen/Qwen3-1.7B", "qwen3-1.7b"),
        ("/tmp/run/models/tiny-llama", "tiny-llama"),
        ("models/tiny-llama", "/elsewhere/models/tiny-llama"),
    ],
)
def test_names_of_one_model_match(name_a: str, name_b: str) -> None:
    assert same_model(name_a, name_b) and same_model(name_b, name_a)


@pytest.mark.parametrize(
    ("name_a", "name_b"),
    [
        ("smollm2-135m", "gemma-3-270m"),
        ("smollm2-135m", "gpt2"),
        ("smollm2-135m", "HuggingFaceTB/SmolLM2-135M"),  # base vs Instruct: other weights
        ("gemma3-270m", "google/gemma-3-270m-it"),
        ("meta-llama/Llama-3.1-8B", "meta-llama/Llama-3.1-8B-Instruct"),
        ("gpt2", "/models/my-gpt2"),
    ],
)
def test_names_of_different_models_do_not_match(name_a: str, name_b: str) -> None:
    assert not same_model(name_a, name_b) and not same_model(name_b, name_a)


def test_a_pseval_trained_sae_matches_its_model_folder(tmp_path: Path) -> None:
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    assert same_model(str(folder), str(folder))
    assert model_key(str(folder)) == "tiny-llama"


def test_the_fix_names_a_pseval_alias_when_there_is_one() -> None:
    assert suggested_model_option("google/gemma-3-270m") == "gemma3-270m"
    assert suggested_model_option("HuggingFaceTB/SmolLM2-135M-Instruct") == "smollm2-135m"
    assert suggested_model_option("Qwen/Qwen3-1.7B") == "Qwen/Qwen3-1.7B"
