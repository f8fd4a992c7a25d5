"""SAE configs: registry, validation, and documentation of every field."""

from __future__ import annotations

import pytest

from pseval.errors import ConfigError
from pseval.sae import ARCHITECTURES, SAE_CONFIGS, SAEConfig, TopKSAEConfig, config_from_dict


def test_registry_holds_every_architecture() -> None:
    assert set(ARCHITECTURES) == {"standard", "topk", "batchtopk", "jumprelu", "gated"}
    for name, cls in SAE_CONFIGS.items():
        extra = {"k": 4} if name in ("topk", "batchtopk") else {}
        cfg = config_from_dict({"architecture": name, "d_in": 8, "d_sae": 16, **extra})
        assert isinstance(cfg, cls)
        assert cfg.architecture == name


def test_defaults_follow_saelens() -> None:
    cfg = config_from_dict({"d_in": 8, "d_sae": 16})
    assert cfg.architecture == "standard"
    assert cfg.dtype == "float32"
    assert cfg.apply_b_dec_to_input is True
    assert cfg.normalize_activations == "none"
    assert cfg.hook_name is None and cfg.model_name is None and cfg.metadata == {}
    topk = config_from_dict({"architecture": "topk", "d_in": 8, "d_sae": 16, "k": 3})
    assert isinstance(topk, TopKSAEConfig) and topk.rescale_acts_by_decoder_norm is False


@pytest.mark.parametrize("architecture", ["topk", "batchtopk"])
@pytest.mark.parametrize("k", [0, 17, -1])
def test_k_out_of_range_is_a_config_error(architecture: str, k: int) -> None:
    with pytest.raises(ConfigError, match="k="):
        config_from_dict({"architecture": architecture, "d_in": 8, "d_sae": 16, "k": k})


def test_k_checked_on_assignment() -> None:
    cfg = config_from_dict({"architecture": "topk", "d_in": 8, "d_sae": 16, "k": 3})
    with pytest.raises(ConfigError):
        cfg.k = 100  # type: ignore[attr-defined]


def test_batchtopk_k_may_be_fractional() -> None:
    cfg = config_from_dict({"architecture": "batchtopk", "d_in": 8, "d_sae": 16, "k": 2.5})
    assert cfg.k == 2.5  # type: ignore[attr-defined]


def test_unknown_architecture_and_bad_values() -> None:
    with pytest.raises(ConfigError, match="unknown SAE architecture 'relu2'"):
        config_from_dict({"architecture": "relu2", "d_in": 8, "d_sae": 16})
    with pytest.raises(ConfigError, match="d_in"):
        config_from_dict({"d_in": 0, "d_sae": 16})
    with pytest.raises(ConfigError, match="normalize_activations"):
        config_from_dict({"d_in": 8, "d_sae": 16, "normalize_activations": "whiten"})
    with pytest.raises(ConfigError, match="k"):
        config_from_dict({"architecture": "topk", "d_in": 8, "d_sae": 16})
    with pytest.raises(ConfigError, match="bogus"):
        config_from_dict({"d_in": 8, "d_sae": 16, "bogus": 1})


@pytest.mark.parametrize("cls", [SAEConfig, *SAE_CONFIGS.values()])
def test_every_field_is_described(cls: type[SAEConfig]) -> None:
    for name, field in cls.model_fields.items():
        assert field.description, f"{cls.__name__}.{name} has no description"
