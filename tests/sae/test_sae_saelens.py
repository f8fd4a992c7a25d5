"""Agreement with the sae_lens library itself: its loader reads our folders to the same latents, and
pretrained SAEs convert from it. Skipped when sae_lens is not installed."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.errors import SAEError
from pseval.sae import load_sae, save_sae
from pseval.sae.pretrained import from_saelens, parse_saelens_spec
from tests.sae.conftest import ARCH_EXTRA, make_sae, random_acts

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    sae_lens = pytest.importorskip("sae_lens")

CASES = [
    (arch, fields)
    for arch in ARCH_EXTRA
    for fields in (
        {},
        {"apply_b_dec_to_input": False},
        {"normalize_activations": "constant_norm_rescale"},
        {"normalize_activations": "layer_norm"},
    )
] + [("topk", {"rescale_acts_by_decoder_norm": True})]


@pytest.mark.parametrize(("arch", "fields"), CASES)
def test_saelens_load_from_disk_gives_the_same_outputs(
    tmp_path: Path, arch: str, fields: dict[str, Any]
) -> None:
    sae = make_sae(arch, **fields)
    save_sae(sae, tmp_path / "s")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "s"))
    expected_class = {"batchtopk": "JumpReLUSAE", "topk": "TopKSAE", "standard": "StandardSAE"}.get(arch)
    if expected_class:
        assert type(theirs).__name__ == expected_class
    x = random_acts()
    with torch.no_grad():
        ours_feats, their_feats = sae.encode(x), theirs.encode(x)
        torch.testing.assert_close(ours_feats, their_feats, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae.decode(ours_feats), theirs.decode(their_feats), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(sae(x), theirs(x), atol=1e-5, rtol=1e-5)
    assert theirs.cfg.metadata.hook_name == "blocks.3.hook_resid_post"
    assert theirs.cfg.metadata.model_name == "tiny-model"


@pytest.mark.parametrize("arch", ["standard", "gated", "jumprelu"])
def test_saelens_fold_W_dec_norm_agrees(tmp_path: Path, arch: str) -> None:
    sae = make_sae(arch)
    save_sae(sae, tmp_path / "s")
    theirs = sae_lens.SAE.load_from_disk(str(tmp_path / "s"), fold_W_dec_norm=True)
    x = random_acts()
    with torch.no_grad():
        torch.testing.assert_close(sae.fold_decoder_norms().encode(x), theirs.encode(x), atol=1e-5, rtol=1e-5)


def test_saelens_folder_written_by_saelens_loads(tmp_path: Path) -> None:
    theirs = sae_lens.SAE.load_from_disk(str(_saved(tmp_path, "gated")))
    theirs.save_model(str(tmp_path / "by_saelens"))
    ours = load_sae(tmp_path / "by_saelens")
    x = random_acts()
    with torch.no_grad():
        torch.testing.assert_close(ours.encode(x), theirs.encode(x), atol=1e-6, rtol=1e-6)


def _saved(tmp_path: Path, arch: str) -> Path:
    save_sae(make_sae(arch), tmp_path / arch)
    return tmp_path / arch


@pytest.mark.parametrize("arch", list(ARCH_EXTRA))
def test_from_saelens_converts_in_memory_saes(tmp_path: Path, arch: str) -> None:
    sae = make_sae(arch)
    theirs = sae_lens.SAE.load_from_disk(str(_saved(tmp_path, arch)))
    ours = from_saelens(theirs)
    assert ours.cfg.architecture == arch  # batchtopk is recovered from the training metadata
    assert ours.fingerprint() == sae.fingerprint()


def test_pretrained_spec_of_a_conversion_without_reader_goes_through_saelens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = _saved(tmp_path, "jumprelu")
    calls: list[tuple[str, str]] = []

    def fake_from_pretrained(release: str, sae_id: str, device: str = "cpu", dtype: str = "float32") -> Any:
        calls.append((release, sae_id))
        return sae_lens.SAE.load_from_disk(str(folder), device=device, dtype=dtype)

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", fake_from_pretrained)
    # goodfire releases use a sae-lens conversion pseval has no reader for
    from pseval.sae.pretrained import registry

    release = next(r for r in registry().values() if r.conversion_func == "goodfire")
    sae_id = next(iter(release.saes))
    loaded = load_sae(f"saelens:{release.name}/{sae_id}")
    assert calls and calls[0] == (release.name, sae_id)
    assert loaded.cfg.metadata["source_format"] == "saelens_pretrained"
    assert loaded.fingerprint() == make_sae("jumprelu").fingerprint()


def test_pretrained_unreachable_hub_is_an_sae_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub.errors import LocalEntryNotFoundError

    def offline(*args: Any, **kwargs: Any) -> Any:
        raise LocalEntryNotFoundError("not in cache and offline")

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", offline)
    with pytest.raises(SAEError, match=r"Hugging Face hub is unreachable.*download the SAE folder"):
        load_sae("saelens:gpt2-small-res-jb/blocks.0.hook_resid_pre")

    def no_network(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionError("Name or service not known")

    monkeypatch.setattr(sae_lens.SAE, "from_pretrained", no_network)
    with pytest.raises(SAEError, match="unreachable"):
        load_sae("saelens:gpt2-small-res-jb/blocks.0.hook_resid_pre")


def test_pretrained_unknown_ids_are_sae_errors() -> None:
    # the registry is checked before any download, so these need no network
    with pytest.raises(SAEError, match="not in the SAELens pretrained registry"):
        load_sae("saelens:gpt2-small-res-jb/no-such-id")
    with pytest.raises(SAEError, match=r"not of the form saelens:RELEASE/SAE_ID"):
        parse_saelens_spec("saelens:just-a-release")
