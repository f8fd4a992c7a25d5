"""Activation processing: reading SAE metadata and reproducing a processed TransformerLens model's values."""

from __future__ import annotations

import pytest
import torch

from pseval.errors import ConfigError
from pseval.models.processing import ActivationProcessing, apply_processing, processing_from_sae_metadata
from tests.helpers import tiny_model

CENTRED = ActivationProcessing(center_writing_weights=True)


def test_metadata_without_kwargs_means_raw() -> None:
    for metadata in (None, {}, {"model_from_pretrained_kwargs": None}, {"model_from_pretrained_kwargs": {}}):
        processing = processing_from_sae_metadata(metadata)
        assert processing.is_identity()
        assert processing.key() == {}


def test_metadata_flags() -> None:
    processing = processing_from_sae_metadata(
        {"model_from_pretrained_kwargs": {"center_writing_weights": True, "fold_ln": True, "n_devices": 1}}
    )
    assert processing == CENTRED
    assert not processing.is_identity()
    assert processing.key() == {"center_writing_weights": True}
    assert processing_from_sae_metadata(
        {"model_from_pretrained_kwargs": {"center_writing_weights": False}}
    ).is_identity()


@pytest.mark.parametrize(
    "kwargs",
    [{"center_writing_weights": "yes"}, {"some_new_processing": True}],
)
def test_metadata_errors(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        processing_from_sae_metadata({"model_from_pretrained_kwargs": kwargs})


def test_processing_is_frozen_and_hashable() -> None:
    assert hash(CENTRED) == hash(ActivationProcessing(center_writing_weights=True))
    with pytest.raises(ValueError):
        CENTRED.center_writing_weights = False  # type: ignore[misc]


@pytest.mark.parametrize("kind", ["resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out"])
def test_layernorm_residual_writes_are_centred(kind: str) -> None:
    model = tiny_model("gpt2", n_layers=2)
    acts = torch.tensor([[1.0, 2.0, 3.0, 6.0], [0.0, 0.0, 0.0, 4.0]])
    out = apply_processing(model, f"blocks.1.hook_{kind}", acts, CENTRED)
    torch.testing.assert_close(out, torch.tensor([[-2.0, -1.0, 0.0, 3.0], [-1.0, -1.0, -1.0, 3.0]]))


@pytest.mark.parametrize(
    "hook",
    [
        "blocks.0.attn.hook_z",
        "blocks.0.hook_mlp_in",
        "blocks.0.ln2.hook_normalized",
        "blocks.0.mlp.hook_post",
    ],
)
def test_points_after_a_layernorm_do_not_change(hook: str) -> None:
    model = tiny_model("gpt2", n_layers=2)
    acts = torch.randn(3, 5)
    assert torch.equal(apply_processing(model, hook, acts, CENTRED), acts)


@pytest.mark.parametrize("family", ["llama", "gemma3_text", "qwen3"])
def test_rmsnorm_models_stay_raw(family: str) -> None:
    """TransformerLens does not centre the writing weights of RMSNorm models."""
    acts = torch.randn(3, 5)
    assert torch.equal(
        apply_processing(tiny_model(family, n_layers=1), "blocks.0.hook_resid_post", acts, CENTRED), acts
    )


def test_unsupported_combinations_raise() -> None:
    acts = torch.randn(2, 32)
    with pytest.raises(ConfigError, match="bert"):
        apply_processing(tiny_model("bert", n_layers=1), "blocks.0.hook_resid_post", acts, CENTRED)
    gpt2 = tiny_model("gpt2", n_layers=1)
    with pytest.raises(ConfigError, match="fold_value_biases"):
        apply_processing(gpt2, "blocks.0.attn.hook_z", acts, ActivationProcessing(fold_value_biases=True))
    with pytest.raises(ConfigError, match="refactor"):
        apply_processing(
            gpt2, "blocks.0.attn.hook_z", acts, ActivationProcessing(refactor_factored_attn_matrices=True)
        )
    # Where they change nothing, the same flags are fine.
    same = apply_processing(gpt2, "blocks.0.hook_mlp_out", acts, ActivationProcessing(fold_value_biases=True))
    assert torch.equal(same, acts)
    llama = tiny_model("llama", n_layers=1)  # no value biases: folding them is a no-op
    assert torch.equal(
        apply_processing(llama, "blocks.0.attn.hook_z", acts, ActivationProcessing(fold_value_biases=True)),
        acts,
    )


def test_identity_returns_the_input() -> None:
    acts = torch.randn(2, 3)
    assert apply_processing(object(), "blocks.0.hook_resid_post", acts, ActivationProcessing()) is acts
