"""The SAE module: the encode semantics of each architecture and the weight transformations."""

from __future__ import annotations

import pytest
import torch

from pseval.errors import SAEError
from pseval.sae import SAE, config_from_dict
from tests.sae.conftest import ARCH_EXTRA, D_IN, D_SAE, make_sae, random_acts

ARCHS = list(ARCH_EXTRA)


def _manual_encode(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """The architectures written out by hand, for the 'none' normalisation."""
    sae_in = x - sae.b_dec if sae.cfg.apply_b_dec_to_input else x
    arch = sae.cfg.architecture
    if arch == "gated":
        gate = (sae_in @ sae.W_enc + sae.b_gate) > 0
        mag = torch.relu(sae_in @ (sae.W_enc * sae.r_mag.exp()) + sae.b_mag)
        return gate * mag
    pre = sae_in @ sae.W_enc + sae.b_enc
    if arch == "standard":
        return torch.relu(pre)
    if arch == "topk":
        k = sae.cfg.k  # type: ignore[attr-defined]
        out = torch.zeros_like(pre)
        for i, row in enumerate(pre):
            idx = row.argsort(descending=True)[:k]
            out[i, idx] = torch.relu(row[idx])
        return out
    return torch.where(pre > sae.threshold, torch.relu(pre), torch.zeros_like(pre))


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("apply_b_dec", [True, False])
def test_encode_matches_hand_written_semantics(arch: str, apply_b_dec: bool) -> None:
    sae = make_sae(arch, apply_b_dec_to_input=apply_b_dec)
    x = random_acts()
    with torch.no_grad():
        feats = sae.encode(x)
        torch.testing.assert_close(feats, _manual_encode(sae, x), atol=1e-6, rtol=1e-6)
        recon = sae.decode(feats)
        torch.testing.assert_close(recon, feats @ sae.W_dec + sae.b_dec)
        torch.testing.assert_close(sae(x), recon)
    assert feats.shape == (32, D_SAE)
    assert (feats >= 0).all()
    if arch == "topk":
        assert ((feats > 0).sum(-1) <= 6).all()


def test_leading_dimensions_are_kept() -> None:
    sae = make_sae("topk")
    x = random_acts(12).reshape(3, 4, D_IN)
    feats = sae.encode(x)
    assert feats.shape == (3, 4, D_SAE)
    torch.testing.assert_close(feats.reshape(12, D_SAE), sae.encode(x.reshape(12, D_IN)))
    assert sae(x).shape == x.shape


def test_topk_rescale_acts_by_decoder_norm() -> None:
    sae = make_sae("topk", rescale_acts_by_decoder_norm=True)
    x = random_acts()
    norms = sae.decoder_norms()
    pre = ((x - sae.b_dec) @ sae.W_enc + sae.b_enc) * norms
    assert torch.allclose(sae.encode_pre_act(x), pre)
    feats = sae.encode(x)
    torch.testing.assert_close(sae.decode(feats), (feats / norms) @ sae.W_dec + sae.b_dec)


@pytest.mark.parametrize("mode", ["constant_norm_rescale", "layer_norm"])
def test_normalisation_is_undone_on_output(mode: str) -> None:
    sae = make_sae("standard", normalize_activations=mode)
    x = random_acts()
    if mode == "constant_norm_rescale":
        coeff = D_IN**0.5 / x.norm(dim=-1, keepdim=True)
        x_in, undo = x * coeff, lambda y: y / coeff
    else:
        mu = x.mean(-1, keepdim=True)
        std = (x - mu).std(-1, keepdim=True)
        x_in, undo = (x - mu) / (std + 1e-5), lambda y: y * std + mu
    expected_feats = torch.relu((x_in - sae.b_dec) @ sae.W_enc + sae.b_enc)
    feats = sae.encode(x)
    torch.testing.assert_close(feats, expected_feats)
    expected = undo(expected_feats @ sae.W_dec + sae.b_dec)
    torch.testing.assert_close(sae.decode(feats), expected)  # statistics of the last encode
    torch.testing.assert_close(sae.decode(feats, x), expected)
    torch.testing.assert_close(sae(x), expected)
    fresh = make_sae("standard", normalize_activations=mode)
    with pytest.raises(SAEError, match="needs the input"):
        fresh.decode(feats)


def test_expected_average_only_in_is_identity_like_saelens() -> None:
    plain = make_sae("standard")
    scaled = make_sae("standard", normalize_activations="expected_average_only_in")
    x = random_acts()
    torch.testing.assert_close(plain.encode(x), scaled.encode(x))
    folded = scaled.fold_activation_norm_scaling_factor(2.0)
    assert folded.cfg.normalize_activations == "none"
    torch.testing.assert_close(folded.encode(x), scaled.encode(x * 2.0))


def test_width_mismatch_is_an_sae_error() -> None:
    sae = make_sae("standard")
    with pytest.raises(SAEError, match=r"width 17 .* d_in=16.*blocks\.3\.hook_resid_post"):
        sae.encode(torch.zeros(2, 17))


@pytest.mark.parametrize("arch", ["standard", "jumprelu", "batchtopk", "gated"])
def test_fold_decoder_norms_preserves_reconstruction(arch: str) -> None:
    sae = make_sae(arch)
    x = random_acts()
    folded = sae.fold_decoder_norms()
    torch.testing.assert_close(folded.decoder_norms(), torch.ones(D_SAE), atol=1e-5, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), sae(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(
            folded.encode(x), sae.encode(x) * sae.decoder_norms(), atol=1e-5, rtol=1e-5
        )
    assert folded.cfg.metadata["decoder_norms_folded"] is True
    assert sae.cfg.metadata.get("decoder_norms_folded") is None  # the original is untouched


def test_fold_decoder_norms_topk() -> None:
    x = random_acts()
    rescaled = make_sae("topk", rescale_acts_by_decoder_norm=True)
    folded = rescaled.fold_decoder_norms()
    assert folded.cfg.rescale_acts_by_decoder_norm is False  # type: ignore[attr-defined]
    with torch.no_grad():
        torch.testing.assert_close(folded.encode(x), rescaled.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(folded(x), rescaled(x), atol=1e-5, rtol=1e-5)
    plain = make_sae("topk")
    with pytest.raises(SAEError, match="changes which latents"):
        plain.fold_decoder_norms()
    forced = plain.fold_decoder_norms(strict=False)
    assert torch.allclose(forced.decoder_norms(), torch.ones(D_SAE), atol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_moving_b_dec_into_the_encoder_bias_keeps_latents(arch: str) -> None:
    sae = make_sae(arch)
    x = random_acts()
    moved = sae.with_apply_b_dec_to_input(False)
    assert moved.cfg.apply_b_dec_to_input is False
    back = moved.with_apply_b_dec_to_input(True)
    with torch.no_grad():
        torch.testing.assert_close(moved.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(back.encode(x), sae.encode(x), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(moved(x), sae(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ARCHS)
def test_parameters_and_gradients(arch: str) -> None:
    sae = make_sae(arch)
    names = {name for name, _ in sae.named_parameters()}
    extra = {
        "standard": {"b_enc"},
        "topk": {"b_enc"},
        "batchtopk": {"b_enc", "threshold"},
        "jumprelu": {"b_enc", "threshold"},
        "gated": {"b_gate", "b_mag", "r_mag"},
    }[arch]
    assert names == {"W_enc", "W_dec", "b_dec"} | extra
    assert sae.W_enc.shape == (D_IN, D_SAE) and sae.W_dec.shape == (D_SAE, D_IN)
    loss = (sae(random_acts()) - random_acts(seed=1)).pow(2).sum()
    loss.backward()
    assert sae.W_enc.grad is not None and sae.W_enc.grad.abs().sum() > 0
    assert sae.W_dec.grad is not None and sae.W_dec.grad.abs().sum() > 0


def test_batchtopk_training_activation_keeps_k_per_row_on_average() -> None:
    sae = make_sae("batchtopk")
    feats = sae.encode_batchtopk(random_acts(40))
    assert int((feats > 0).sum()) <= 6 * 40
    assert int((feats > 0).sum()) >= 6 * 40 - 5


def test_create_random_is_deterministic_and_normalised() -> None:
    cfg = config_from_dict({"architecture": "jumprelu", "d_in": D_IN, "d_sae": D_SAE})
    a, b = SAE.create_random(cfg, seed=3), SAE.create_random(cfg, seed=3)
    assert a.fingerprint() == b.fingerprint()
    assert a.fingerprint() != SAE.create_random(cfg, seed=4).fingerprint()
    torch.testing.assert_close(a.decoder_norms(), torch.ones(D_SAE))
    torch.testing.assert_close(a.W_enc, a.W_dec.T * a.W_enc.norm(dim=0))


def test_dtype_follows_to() -> None:
    sae = make_sae("standard")
    sae.to(torch.float64)
    assert sae.cfg.dtype == "float64" and sae.dtype == torch.float64
    assert sae.encode(random_acts()).dtype == torch.float64


def test_from_state_dict_checks_names_and_shapes() -> None:
    sae = make_sae("jumprelu")
    state = dict(sae.state_dict())
    rebuilt = SAE.from_state_dict(sae.cfg, state)
    assert rebuilt.fingerprint() == sae.fingerprint()
    with pytest.raises(SAEError, match="missing threshold"):
        SAE.from_state_dict(sae.cfg, {k: v for k, v in state.items() if k != "threshold"})
    with pytest.raises(SAEError, match=r"W_enc has shape \[48, 16\], expected \[16, 48\]"):
        SAE.from_state_dict(sae.cfg, {**state, "W_enc": state["W_enc"].T})
