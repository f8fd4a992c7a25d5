"""Matryoshka BatchTopK: the nested-prefix loss, its agreement with SAELens, export, config and CLI."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from pseval.errors import ConfigError
from pseval.sae.formats import load_sae
from pseval.sae.model import batch_topk_activation
from pseval.training.architectures import MatryoshkaBatchTopKTrainingSAE, build_training_sae
from pseval.training.config import TrainConfig
from pseval.training.trainer import train_sae_on_activations, write_output
from tests.training.test_trainer import D_IN, make_config, recovery, synthetic_batches, true_dictionary

WIDTHS = [16, 48]


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def matryoshka_config(**overrides: object) -> TrainConfig:
    settings: dict[str, object] = {"matryoshka_widths": WIDTHS, "k": 4}
    settings.update(overrides)
    return make_config("matryoshka_batchtopk", **settings)


def _module(config: TrainConfig) -> MatryoshkaBatchTopKTrainingSAE:
    module = build_training_sae(config, D_IN, 128, torch.Generator().manual_seed(3))
    assert isinstance(module, MatryoshkaBatchTopKTrainingSAE)
    with torch.no_grad():  # non-trivial biases so every term of the loss matters
        module.b_enc.normal_(0, 0.1, generator=torch.Generator().manual_seed(4))
        module.b_dec.normal_(0, 0.1, generator=torch.Generator().manual_seed(5))
    return module


def _dense_reference_loss(module: MatryoshkaBatchTopKTrainingSAE, x_ND: torch.Tensor) -> torch.Tensor:
    """Sum over prefixes w of mean_n ||x - (feats[:, :w] @ W_dec[:w] + b_dec)||², written plainly."""
    pre_NF = (x_ND - module.b_dec) @ module.W_enc + module.b_enc
    feats_NF = batch_topk_activation(pre_NF, float(module.k))
    total = x_ND.new_zeros(())
    for width in module.widths:
        recon_ND = feats_NF[:, :width] @ module.W_dec[:width] + module.b_dec
        total = total + (recon_ND - x_ND).pow(2).sum(-1).mean()
    return total


def test_widths_default_parse_and_validate() -> None:
    assert matryoshka_config().resolve_matryoshka_widths(128) == [16, 48, 128]
    assert matryoshka_config(matryoshka_widths="16, 48,128").matryoshka_widths == [16, 48, 128]
    assert matryoshka_config(matryoshka_widths=None).resolve_matryoshka_widths(128) == [8, 32, 128]
    with pytest.raises(ConfigError, match="strictly increasing"):
        matryoshka_config(matryoshka_widths=[48, 16])
    with pytest.raises(ConfigError, match="exceed"):
        matryoshka_config(matryoshka_widths=[16, 256])
    with pytest.raises(ConfigError, match="comma-separated"):
        matryoshka_config(matryoshka_widths="16,a")
    assert "matryoshka_widths" in matryoshka_config().architecture_hyperparameters()


def test_loss_is_the_sum_of_the_prefix_reconstruction_errors() -> None:
    module = _module(matryoshka_config(aux_k_coefficient=0.0))
    x_ND = next(synthetic_batches(true_dictionary(), seed=2, batch=64))
    out = module.training_step(x_ND, 0.0, None)
    reference = _dense_reference_loss(module, x_ND)
    torch.testing.assert_close(out.loss, reference, rtol=1e-5, atol=1e-5)
    grads = torch.autograd.grad(out.loss, [module.W_enc, module.W_dec, module.b_enc, module.b_dec])
    expected = torch.autograd.grad(reference, [module.W_enc, module.W_dec, module.b_enc, module.b_dec])
    for got, want in zip(grads, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)
    # The reported MSE is that of the full dictionary alone.
    full_ND = module.decode(batch_topk_activation(module.pre_acts(x_ND), float(module.k)))
    torch.testing.assert_close(out.mse, (full_ND - x_ND).pow(2).sum(-1).mean(), rtol=1e-5, atol=1e-5)


def test_loss_matches_saelens_training_forward_pass() -> None:
    pytest.importorskip("sae_lens")
    from sae_lens.saes.matryoshka_batchtopk_sae import (
        MatryoshkaBatchTopKTrainingSAE as SAELensMatryoshka,
    )
    from sae_lens.saes.matryoshka_batchtopk_sae import MatryoshkaBatchTopKTrainingSAEConfig
    from sae_lens.saes.sae import TrainStepInput

    module = _module(matryoshka_config())
    x_ND = next(synthetic_batches(true_dictionary(), seed=2, batch=64))
    # No dead latents: pseval's AuxK ReLUs the dead latents' pre-activations (as EleutherAI's sparsify),
    # SAELens' does not, so only the reconstruction terms are compared.
    dead_F = None
    cfg = MatryoshkaBatchTopKTrainingSAEConfig(
        d_in=D_IN,
        d_sae=128,
        k=4,
        matryoshka_widths=[*WIDTHS, 128],
        aux_loss_coefficient=module.config.aux_k_coefficient,
        rescale_acts_by_decoder_norm=False,
        decoder_init_norm=None,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAELensMatryoshka(cfg)
    with torch.no_grad():
        for name in ("W_enc", "W_dec", "b_enc", "b_dec"):
            getattr(theirs, name).copy_(getattr(module, name))
    step = TrainStepInput(
        sae_in=x_ND, coefficients={}, dead_neuron_mask=dead_F, n_training_steps=0, is_logging_step=False
    )
    expected = theirs.training_forward_pass(step)
    out = module.training_step(x_ND, 0.0, dead_F)
    torch.testing.assert_close(out.loss, expected.loss, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.mse, expected.losses["mse_loss"], rtol=1e-5, atol=1e-5)


def test_trained_matryoshka_loads_in_pseval_and_saelens_with_identical_latents(tmp_path: Path) -> None:
    config = matryoshka_config(k=3, training_tokens=256 * 150)
    sae, log = train_sae_on_activations(config, synthetic_batches(true_dictionary()), D_IN, progress=False)
    assert recovery(sae, true_dictionary()) > 0.85
    out = write_output(sae, tmp_path / "m", log)
    cfg = json.loads((out / "cfg.json").read_text())
    assert cfg["architecture"] == "jumprelu"  # as SAELens saves Matryoshka BatchTopK SAEs
    assert cfg["metadata"]["training_architecture"] == "matryoshka_batchtopk"
    assert cfg["metadata"]["training_architecture_details"]["matryoshka_widths"] == [16, 48, 128]
    assert cfg["metadata"]["training_architecture_details"]["k"] == 3
    x_ND = next(synthetic_batches(true_dictionary(), seed=9))
    ours = load_sae(str(out))
    assert ours.cfg.architecture == "batchtopk"
    assert ours.cfg.metadata["training_architecture"] == "matryoshka_batchtopk"
    torch.testing.assert_close(ours.encode(x_ND), sae.encode(x_ND), rtol=0, atol=0)
    pytest.importorskip("sae_lens")
    from sae_lens import SAE as SAELensSAE

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = SAELensSAE.load_from_disk(str(out))
    assert theirs.cfg.architecture() == "jumprelu"
    assert theirs.cfg.metadata.training_architecture == "matryoshka_batchtopk"
    torch.testing.assert_close(theirs.encode(x_ND), sae.encode(x_ND), rtol=0, atol=1e-6)
    torch.testing.assert_close(theirs(x_ND), sae(x_ND), rtol=1e-5, atol=1e-5)


def test_prefixes_reconstruct_better_than_batchtopk_prefixes() -> None:
    """What the nested loss is for: the first latents alone reconstruct far better than BatchTopK's."""
    data = true_dictionary()
    x_ND = next(synthetic_batches(data, seed=9))
    errors = {}
    for arch, extra in (("matryoshka_batchtopk", {"matryoshka_widths": [16]}), ("batchtopk", {})):
        config = make_config(arch, k=3, training_tokens=256 * 150, **extra)
        sae, _ = train_sae_on_activations(config, synthetic_batches(data), D_IN, progress=False)
        with torch.no_grad():
            feats_NF = sae.encode(x_ND)
            feats_NF[:, 16:] = 0
            errors[arch] = float((sae.decode(feats_NF) - x_ND).pow(2).sum(-1).mean())
    assert errors["matryoshka_batchtopk"] < 0.8 * errors["batchtopk"]


def test_cli_trains_matryoshka(tmp_path: Path) -> None:
    """``pseval train --architecture matryoshka_batchtopk --matryoshka-widths ...`` reaches the config."""
    from typer.testing import CliRunner

    from pseval.cli import app

    result = CliRunner().invoke(app, ["train", "--help"])
    assert "--matryoshka-widths" in result.output and "--freeze" in result.output
    result = CliRunner().invoke(
        app,
        ["train", "--architecture", "matryoshka_batchtopk", "--d-sae", "64", "--matryoshka-widths", "80"],
    )
    assert result.exit_code == 2 and "exceed" in result.output
