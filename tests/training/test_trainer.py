"""The SAE trainer on synthetic data from a known sparse dictionary: every architecture must recover it.

Data: 64 unit-norm "true features" in d_in = 32, three active per sample with magnitudes in [1, 3], plus
a constant offset (so b_dec has something to learn). A trained SAE recovers the dictionary when, for each
true feature, some decoder row points the same way (best cosine averaged over features >= 0.9).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.errors import ConfigError, DataError
from pseval.sae.formats import load_sae
from pseval.sae.model import SAE, batch_topk_activation, topk_activation
from pseval.training.architectures import build_training_sae
from pseval.training.config import TrainConfig
from pseval.training.trainer import (
    CHECKPOINTS_DIR,
    StepMetrics,
    check_output_dir,
    evaluate_sae_on_activations,
    geometric_median,
    lr_factor,
    train_sae_on_activations,
    write_output,
)

D_IN = 32
N_TRUE = 64
N_ACTIVE = 3
BATCH = 256


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny matmuls run fastest (and most reproducibly) on one thread, whatever else shares the machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def true_dictionary(seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    dict_FD = torch.randn(N_TRUE, D_IN, generator=gen)
    return dict_FD / dict_FD.norm(dim=1, keepdim=True)


OFFSET_D = torch.randn(D_IN, generator=torch.Generator().manual_seed(5))


def synthetic_batches(dict_FD: torch.Tensor, seed: int = 1, batch: int = BATCH) -> Iterator[torch.Tensor]:
    """Endless batches of sparse non-negative combinations of the true features, plus an offset."""
    gen = torch.Generator().manual_seed(seed)
    while True:
        idx_NA = torch.rand(batch, N_TRUE, generator=gen).argsort(dim=1)[:, :N_ACTIVE]
        mag_NA = torch.rand(batch, N_ACTIVE, generator=gen) * 2 + 1
        coef_NF = torch.zeros(batch, N_TRUE).scatter_(1, idx_NA, mag_NA)
        yield coef_NF @ dict_FD + OFFSET_D


def recovery(sae: SAE, dict_FD: torch.Tensor) -> float:
    """Mean over true features of the best cosine with a decoder row."""
    W_dec_FD = sae.W_dec.detach()
    W_dec_FD = W_dec_FD / W_dec_FD.norm(dim=1, keepdim=True)
    return float((dict_FD @ W_dec_FD.T).max(dim=1).values.mean())


def make_config(architecture: str = "topk", **overrides: Any) -> TrainConfig:
    settings: dict[str, Any] = {
        "architecture": architecture,
        "d_sae": 128,
        "k": N_ACTIVE,
        "batch_size": BATCH,
        "training_tokens": BATCH * 20,
        "lr": 1e-2,
        "device": "cpu",
        "log_every": 10,
        "seed": 0,
        "hook_name": "blocks.1.hook_resid_post",
        "model": "synthetic",
    }
    settings.update(overrides)
    return TrainConfig(**settings)


def train(config: TrainConfig, data_seed: int = 1, **kwargs: Any) -> tuple[SAE, Any]:
    return train_sae_on_activations(
        config, synthetic_batches(true_dictionary(), seed=data_seed), D_IN, progress=False, **kwargs
    )


# Per-architecture settings that recover the dictionary reliably in about a second.
RECOVERY_SETTINGS: dict[str, dict[str, Any]] = {
    "topk": {"lr": 1e-2, "steps": 150},
    "batchtopk": {"lr": 1e-2, "steps": 200},
    "standard": {"lr": 1e-2, "steps": 150, "l1_coefficient": 1.0},
    "jumprelu": {"lr": 3e-3, "steps": 300, "l0_coefficient": 0.3},
    "gated": {"lr": 3e-3, "steps": 250, "l1_coefficient": 3.0},
}


@pytest.fixture(scope="module")
def trained() -> dict[str, tuple[SAE, Any]]:
    """One recovery run per architecture, shared by the tests that inspect the result."""
    runs = {}
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        for architecture, settings in RECOVERY_SETTINGS.items():
            settings = dict(settings)
            steps = settings.pop("steps")
            config = make_config(architecture, training_tokens=BATCH * steps, log_every=50, **settings)
            runs[architecture] = train(config)
    finally:
        torch.set_num_threads(before)
    return runs


# ------------------------------------------------------------------------------------------------ recovery


@pytest.mark.parametrize("architecture", list(RECOVERY_SETTINGS))
def test_recovers_known_dictionary(trained: dict[str, tuple[SAE, Any]], architecture: str) -> None:
    sae, log = trained[architecture]
    assert sae.architecture == architecture
    assert recovery(sae, true_dictionary()) >= 0.9
    # Exported SAEs read raw activations, have unit-norm decoder rows and reconstruct well.
    torch.testing.assert_close(sae.decoder_norms(), torch.ones(sae.d_sae), atol=1e-5, rtol=0)
    fresh = synthetic_batches(true_dictionary(), seed=99)
    metrics = evaluate_sae_on_activations(sae, (next(fresh) for _ in range(4)))
    assert metrics.n_tokens == 4 * BATCH
    assert metrics.explained_variance > 0.7
    assert 0 < metrics.l0 < 30
    assert log.n_tokens == sae.cfg.metadata["training_tokens"]
    assert log.history[-1].explained_variance > 0.7


def test_topk_keeps_exactly_k_latents(trained: dict[str, tuple[SAE, Any]]) -> None:
    sae, log = trained["topk"]
    assert all(record.l0 == N_ACTIVE for record in log.history)
    feats_NF = sae.encode(next(synthetic_batches(true_dictionary(), seed=7)))
    assert ((feats_NF != 0).sum(dim=1) == N_ACTIVE).all()
    assert sae.cfg.k == N_ACTIVE  # type: ignore[attr-defined]


def test_batchtopk_saves_a_global_threshold(trained: dict[str, tuple[SAE, Any]]) -> None:
    sae, log = trained["batchtopk"]
    threshold_F = sae.threshold.detach()
    assert threshold_F.shape == (sae.d_sae,)
    assert (threshold_F == threshold_F[0]).all() and threshold_F[0] > 0
    assert all(record.l0 == pytest.approx(N_ACTIVE) for record in log.history)
    # At inference the per-token threshold keeps about k latents per input on average.
    feats_NF = sae.encode(next(synthetic_batches(true_dictionary(), seed=7)))
    l0 = float((feats_NF > 0).sum(dim=1).float().mean())
    assert N_ACTIVE * 0.5 < l0 < N_ACTIVE * 2


def test_jumprelu_thresholds_move(trained: dict[str, tuple[SAE, Any]]) -> None:
    sae, _ = trained["jumprelu"]
    init = make_config("jumprelu").jumprelu_init_threshold
    input_scale = sae.cfg.metadata["activation_scale"]
    # Saved thresholds are in raw units (divided by the training input scale).
    threshold_F = sae.threshold.detach() * input_scale
    assert (threshold_F - init).abs().min() > 1e-3
    assert float(threshold_F.mean()) > 2 * init


def test_standard_l1_warmup_and_sparsity(trained: dict[str, tuple[SAE, Any]]) -> None:
    sae, log = trained["standard"]
    assert log.history[-1].l0 < log.history[0].l0
    assert sae.cfg.metadata["hyperparameters"]["l1_coefficient"] == 1.0
    # Warm-up scales the L1 term: its weighted value starts at zero.
    _, warm_log = train(make_config("standard", l1_coefficient=1.0, l1_warmup_steps=1000, log_every=1,
                                    training_tokens=BATCH * 2))  # fmt: skip
    _, cold_log = train(make_config("standard", l1_coefficient=1.0, log_every=1, training_tokens=BATCH * 2))
    assert warm_log.history[0].aux < cold_log.history[0].aux / 100


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
def test_sparse_decode_gradients_match_dense(architecture: str) -> None:
    """The sparse TopK/BatchTopK decode gives the gradients of the plain dense computation."""
    config = make_config(architecture, d_sae=64, k=4)
    module = build_training_sae(config, D_IN, 64, torch.Generator().manual_seed(0))
    with torch.no_grad():
        module.b_enc.normal_()
        module.b_dec.normal_()
    x_ND = torch.randn(16, D_IN, generator=torch.Generator().manual_seed(1))
    module.training_step(x_ND, 0.0, None).loss.backward()
    sparse_grads = {name: p.grad.clone() for name, p in module.named_parameters() if p.grad is not None}
    module.zero_grad()
    pre_NF = (x_ND - module.b_dec) @ module.W_enc + module.b_enc
    if architecture == "topk":
        feats_NF = topk_activation(pre_NF, 4)
    else:
        feats_NF = batch_topk_activation(pre_NF, 4)
    recon_ND = feats_NF @ module.W_dec + module.b_dec
    (recon_ND - x_ND).pow(2).sum(dim=-1).mean().backward()
    for name, p in module.named_parameters():
        torch.testing.assert_close(sparse_grads[name], p.grad, rtol=1e-4, atol=1e-5, msg=name)


# ------------------------------------------------------------------------------------------------ determinism


@pytest.mark.parametrize("architecture", ["topk", "jumprelu"])
def test_same_seed_same_weights(architecture: str) -> None:
    config = make_config(architecture)
    a, _ = train(config)
    b, _ = train(config)
    c, _ = train(make_config(architecture, seed=1))
    for name, tensor in a.state_dict().items():
        assert torch.equal(tensor, b.state_dict()[name]), name
    assert not torch.equal(a.W_dec, c.W_dec)
    assert a.fingerprint() == b.fingerprint()


# ------------------------------------------------------------------------------------------------ saving


@pytest.mark.parametrize("architecture", ["standard", "topk", "batchtopk", "jumprelu", "gated"])
def test_save_load_round_trip(tmp_path: Path, architecture: str) -> None:
    config = make_config(architecture, out=tmp_path / "sae", l1_coefficient=1.0)
    sae, log = train(config)
    out = write_output(sae, config.out, log)  # type: ignore[arg-type]
    loaded = load_sae(out)
    x_ND = next(synthetic_batches(true_dictionary(), seed=3))
    torch.testing.assert_close(loaded.encode(x_ND), sae.encode(x_ND), rtol=0, atol=0)
    torch.testing.assert_close(loaded(x_ND), sae(x_ND), rtol=1e-6, atol=1e-6)
    cfg = json.loads((out / "cfg.json").read_text())
    meta = cfg["metadata"]
    assert meta["model_name"] == "synthetic"
    assert meta["hook_name"] == "blocks.1.hook_resid_post"
    assert meta["training_tokens"] == config.training_tokens
    assert meta["seed"] == 0
    assert meta["training_architecture"] == architecture
    assert "pseval_version" in meta and "final_train_mse" in meta and "final_dead_fraction" in meta
    assert json.loads((out / "training_log.json").read_text())["n_steps"] == log.n_steps


def test_checkpoints_are_complete_sae_folders(tmp_path: Path) -> None:
    out = tmp_path / "run"
    config = make_config("topk", out=out, checkpoint_every=BATCH * 6, training_tokens=BATCH * 20)
    _, log = train(config)
    folders = sorted((out / CHECKPOINTS_DIR).iterdir(), key=lambda p: int(p.name))
    assert [int(p.name) for p in folders] == [BATCH * 6, BATCH * 12, BATCH * 18]
    assert [str(p) for p in folders] == log.checkpoints
    for folder in folders:
        assert load_sae(folder).d_sae == 128
    assert not [p for p in (out / CHECKPOINTS_DIR).iterdir() if p.name.startswith(".")]


def test_output_folder_rules(tmp_path: Path) -> None:
    out = tmp_path / "sae"
    config = make_config("topk", out=out)
    assert check_output_dir(config, out) == "new"
    sae, log = train(config)
    write_output(sae, out, log)
    assert check_output_dir(config, out) == "reuse"
    other = make_config("topk", out=out, seed=3)
    with pytest.raises(ConfigError, match="different config"):
        check_output_dir(other, out)
    assert check_output_dir(make_config("topk", out=out, seed=3, overwrite=True), out) == "overwrite"
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="holds no SAE"):
        check_output_dir(make_config("topk", out=stranger, overwrite=True), stranger)


# ------------------------------------------------------------------------------------------------ loop details


def test_callbacks_and_running_out_of_data() -> None:
    records: list[StepMetrics] = []
    data = synthetic_batches(true_dictionary())
    few = [next(data) for _ in range(5)]
    sae, log = train_sae_on_activations(
        make_config("topk", log_every=2), iter(few), D_IN, callbacks=[records.append], progress=False
    )
    assert log.ran_out_of_data and log.n_steps == 5 and log.n_tokens == 5 * BATCH
    assert [r.step for r in records] == [2, 4]
    assert [r.step for r in log.history] == [2, 4, 5]
    assert sae.cfg.metadata["training_tokens"] == 5 * BATCH


def test_last_batch_is_truncated_to_training_tokens() -> None:
    _, log = train(make_config("topk", training_tokens=BATCH * 3 + 10))
    assert log.n_tokens == BATCH * 3 + 10 and log.n_steps == 4


def test_bad_batches_raise_data_error() -> None:
    with pytest.raises(DataError, match="empty"):
        train_sae_on_activations(make_config(), iter([]), D_IN, progress=False)
    with pytest.raises(DataError, match="shape"):
        train_sae_on_activations(make_config(), iter([torch.zeros(4, D_IN + 1)]), D_IN, progress=False)


def test_dead_latents_are_tracked_and_feed_auxk() -> None:
    # A window of one batch: latents that do not fire in a batch count as dead at the next log.
    _, log = train(
        make_config("topk", d_sae=512, dead_feature_window=BATCH, training_tokens=BATCH * 10, log_every=5)
    )
    assert log.history[0].dead_fraction > 0
    assert log.history[-1].aux > 0


def test_geometric_median_ignores_outliers() -> None:
    points = torch.zeros(101, 3)
    points[:100] = torch.randn(100, 3, generator=torch.Generator().manual_seed(0)) * 0.01 + 1.0
    points[100] = 1e4
    median = geometric_median(points)
    assert (median - 1.0).abs().max() < 0.05
    assert points.mean(dim=0).min() > 50


def test_lr_schedules() -> None:
    warm = make_config(lr_warmup_steps=10)
    assert lr_factor(0, 100, warm) == pytest.approx(0.1)
    assert lr_factor(9, 100, warm) == 1.0 and lr_factor(50, 100, warm) == 1.0
    decay = make_config(lr_decay_steps=10, lr_end_factor=0.0)
    assert lr_factor(89, 100, decay) == 1.0
    assert lr_factor(99, 100, decay) == pytest.approx(0.0)
    cosine = make_config(lr_schedule="cosine", lr_warmup_steps=10, lr_end_factor=0.1)
    assert lr_factor(10, 100, cosine) == pytest.approx(1.0)
    assert lr_factor(99, 100, cosine) == pytest.approx(0.1)
    assert 0.1 < lr_factor(55, 100, cosine) < 1.0


# ------------------------------------------------------------------------------------------------ config


def test_config_validation() -> None:
    with pytest.raises(ConfigError, match="larger than the SAE width"):
        make_config("topk", d_sae=16, k=32)
    with pytest.raises(ConfigError, match="larger than the SAE width"):
        make_config("batchtopk", d_sae=None, expansion_factor=1, k=64).resolve_d_sae(D_IN)
    with pytest.raises(ConfigError, match="larger than the SAE width"):
        train_sae_on_activations(
            make_config("topk", d_sae=None, expansion_factor=1, k=64),
            synthetic_batches(true_dictionary()),
            D_IN,
            progress=False,
        )
    with pytest.raises(ConfigError, match="architecture"):
        TrainConfig(architecture="sparse-magic")
    with pytest.raises(ConfigError, match="training_tokens"):
        TrainConfig(training_tokens=0)
    with pytest.raises(ConfigError, match="only one"):
        TrainConfig(d_sae=100, expansion_factor=4)
    with pytest.raises(ConfigError, match="TransformerLens"):
        TrainConfig(hook_name="model.layers.3")
    with pytest.raises(ConfigError, match="unknown_field"):
        TrainConfig(unknown_field=1)
    with pytest.raises(ConfigError, match="lr"):
        TrainConfig.model_validate({"lr": -1})
    assert TrainConfig().resolve_d_sae(576) == 4608
    assert TrainConfig(expansion_factor=4).resolve_d_sae(576) == 2304
    assert TrainConfig(device="auto").resolve_device() in ("cpu", "cuda")
    assert TrainConfig().n_steps() == math.ceil(2_000_000 / 4096)


def test_config_fields_are_documented() -> None:
    for name, field in TrainConfig.model_fields.items():
        assert field.description, name


def test_config_from_file(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text(json.dumps({"architecture": "jumprelu", "l0_coefficient": 0.5}))
    config = TrainConfig.from_file(path)
    assert config.architecture == "jumprelu" and config.l0_coefficient == 0.5
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="cannot parse"):
        TrainConfig.from_file(path)


def test_saelens_loads_trained_saes(tmp_path: Path) -> None:
    """The written folders load in SAELens itself and give the same latents and reconstructions."""
    pytest.importorskip("sae_lens")
    import warnings

    from sae_lens import SAE as SAELensSAE

    x_ND = next(synthetic_batches(true_dictionary(), seed=5))
    for architecture in RECOVERY_SETTINGS:
        sae, log = train(make_config(architecture, l1_coefficient=1.0))
        out = write_output(sae, tmp_path / architecture, log)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            theirs = SAELensSAE.load_from_disk(str(out))
        torch.testing.assert_close(theirs.encode(x_ND), sae.encode(x_ND), rtol=0, atol=1e-6, msg=architecture)
        torch.testing.assert_close(theirs(x_ND), sae(x_ND), rtol=1e-5, atol=1e-5, msg=architecture)
