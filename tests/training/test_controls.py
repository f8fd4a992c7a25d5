"""Trained controls: frozen random decoder / encoder training, matching, caching and scoring in `pseval eval`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig
from pseval.evals.runner import evaluate
from pseval.sae.formats import load_sae
from pseval.training.architectures import build_training_sae
from pseval.training.controls import CONTROLS, control_train_config
from pseval.training.trainer import train_sae, train_sae_on_activations
from tests.evals.conftest import make_sae, tiny_dataset_file, tiny_model_dir  # noqa: F401 (fixtures)
from tests.helpers import write_word_corpus
from tests.training.test_trainer import D_IN, make_config, synthetic_batches, true_dictionary

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _initial(config: Any) -> Any:
    """The module the trainer starts from (same seed, same generator)."""
    return build_training_sae(config, D_IN, 128, torch.Generator().manual_seed(config.seed))


@pytest.mark.parametrize("architecture", ["topk", "batchtopk", "matryoshka_batchtopk"])
def test_frozen_parts_stay_at_their_random_initialisation(architecture: str) -> None:
    for freeze, frozen, trained in (("decoder", "W_dec", "W_enc"), ("encoder", "W_enc", "W_dec")):
        config = make_config(architecture, freeze=freeze, training_tokens=256 * 20)
        start = _initial(config)
        sae, _ = train_sae_on_activations(config, synthetic_batches(true_dictionary()), D_IN, progress=False)
        # Unit-norm decoders export their weight matrices unscaled, so frozen ones must be bit-identical.
        torch.testing.assert_close(getattr(sae, frozen), getattr(start, frozen).detach(), rtol=0, atol=0)
        assert not torch.allclose(getattr(sae, trained), getattr(start, trained).detach())
        if freeze == "encoder":
            assert torch.count_nonzero(sae.b_enc) == 0  # the encoder bias is part of the frozen encoder
        assert sae.cfg.metadata["train_config"]["freeze"] == freeze


def test_foreign_sae_gets_one_clear_error_naming_the_flags(tmp_path: Path) -> None:
    foreign = load_sae(make_sae(tmp_path / "foreign", "topk", HOOK))
    with pytest.raises(ConfigError, match="records no pseval training config") as info:
        control_train_config(foreign.cfg, "decoder")
    assert info.value.fix is not None
    assert (
        "--freeze decoder" in info.value.fix and "--d-sae 64" in info.value.fix and "--k 4" in info.value.fix
    )


def test_control_config_matches_everything_but_freeze() -> None:
    config = make_config("batchtopk", training_tokens=256 * 4)
    sae, _ = train_sae_on_activations(config, synthetic_batches(true_dictionary()), D_IN, progress=False)
    control = control_train_config(sae.cfg, "encoder", root="somewhere")
    same = config.fingerprint_dict() | {"freeze": "encoder"}
    assert control.fingerprint_dict() == same
    assert control.out == Path("somewhere")
    control_sae, _ = train_sae_on_activations(
        control, iter([next(synthetic_batches(true_dictionary()))]), D_IN
    )
    with pytest.raises(ConfigError, match="itself a control"):
        control_train_config(control_sae.cfg, "decoder")


@pytest.fixture
def trained_sae(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path) -> Path:  # noqa: F811
    corpus = write_word_corpus(tmp_path / "docs.txt", 1500)
    config = make_config(
        "topk",
        model=str(tiny_model_dir),
        hook_name=HOOK,
        corpus=corpus,
        context_size=16,
        model_batch_size=8,
        d_sae=64,
        k=4,
        batch_size=128,
        training_tokens=128 * 10,
        eval_tokens=0,
        buffer_tokens=1024,
        out=tmp_path / "sae",
    )
    return train_sae(config, progress=False).out


def test_eval_controls_are_trained_once_and_reported(
    trained_sae: Path,
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,  # noqa: F811
    tiny_dataset_file: Path,  # noqa: F811
) -> None:
    config = PSEvalConfig(
        model_name=str(tiny_model_dir),
        dataset=str(tiny_dataset_file),
        bootstrap_resamples=0,
        interpret_tokens=0,
        controls=True,
    )
    (result,) = evaluate(str(tiny_model_dir), [trained_sae], config=config, output_folder=tmp_path / "r")
    metrics = result.eval_result_metrics
    for category in CONTROLS:
        control = metrics[category]
        assert set(control) >= {"accuracy", "specificity", "recall", "mean_l0_on_prompts"}
        assert control["l0_matched_by_k"] is True and control["d_sae"] == 64
        assert control["training_tokens"] == 128 * 10
    folders = sorted((tmp_cache / "controls").rglob("cfg.json"))
    assert len(folders) == 2
    stamps = [p.stat().st_mtime_ns for p in folders]
    evaluate(
        str(tiny_model_dir), [trained_sae], config=config, output_folder=tmp_path / "r", force_rerun=True
    )
    assert [p.stat().st_mtime_ns for p in sorted((tmp_cache / "controls").rglob("cfg.json"))] == stamps


def test_eval_controls_refuse_a_foreign_sae_before_loading_the_model(
    tmp_path: Path,
    tmp_cache: Path,
    tiny_model_dir: Path,  # noqa: F811
    tiny_dataset_file: Path,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def no_model(*_args: Any, **_kwargs: Any) -> Any:
        raise AssertionError("the model must not be loaded")

    monkeypatch.setattr("pseval.models.loading.load_model", no_model)
    sae = make_sae(tmp_path / "foreign", "topk", HOOK)
    config = PSEvalConfig(model_name=str(tiny_model_dir), dataset=str(tiny_dataset_file), controls=True)
    with pytest.raises(ConfigError, match="records no pseval training config"):
        evaluate(str(tiny_model_dir), [sae], config=config, output_folder=tmp_path / "r")


@pytest.mark.parametrize(
    ("architecture", "hook", "expected"),
    [
        ("topk", "blocks.12.hook_resid_post", "74215b95a0a9d4fe"),
        ("standard", "blocks.12.hook_attn_out", "5a8318736aa69484"),
    ],
)
def test_sae_trained_before_the_new_options_is_still_the_same_run(
    architecture: str, hook: str, expected: str
) -> None:
    # hashes computed by pseval 0.1.0, before matryoshka_widths and freeze existed: its SAEs are reused
    from pseval.training.config import TrainConfig
    from pseval.training.trainer import config_hash

    config = TrainConfig(
        hook_name=hook, architecture=architecture, expansion_factor=8, training_tokens=131072
    )
    assert config_hash(config) == expected
