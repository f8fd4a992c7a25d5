"""The site check's sparse decode: the same reconstruction metrics as the dense decode, to float rounding."""

from __future__ import annotations

from typing import Any

import pytest
import torch

import pseval.metrics.site as site
from pseval.metrics.site import site_reconstruction
from pseval.metrics.standard import ReconstructionAccumulator, _encode_decode, active_counts
from pseval.sae.config import config_from_dict
from pseval.sae.model import SAE

D_IN, D_SAE, N = 24, 512, 300
EXACT = ("n_tokens", "d_sae", "l0", "l0_normalised", "dead_fraction", "dense_fraction", "dense_threshold")


def _sparse_sae(architecture: str, x_ND: torch.Tensor, **fields: Any) -> SAE:
    """A random SAE whose codes on ``x_ND`` are about 2 % active (a bias or threshold set to a quantile)."""
    cfg = config_from_dict({"architecture": architecture, "d_in": D_IN, "d_sae": D_SAE, **fields})
    sae = SAE.create_random(cfg, seed=3)
    with torch.no_grad():
        sae.b_dec.normal_(generator=torch.Generator().manual_seed(4))
        pre_NF = (x_ND - sae.b_dec) @ sae.W_enc
        cut = float(pre_NF.flatten().kthvalue(int(0.98 * pre_NF.numel())).values)
        if architecture == "jumprelu":
            sae.b_enc.zero_()
            sae.threshold.fill_(cut)
        elif architecture == "standard":
            sae.b_enc.fill_(-cut)
        else:  # topk: its k decides the sparsity; uneven decoder norms exercise the rescaling
            sae.W_dec.mul_(torch.rand(D_SAE, 1, generator=torch.Generator().manual_seed(5)) + 0.5)
    return sae


def _dense(sae: Any, x_ND: torch.Tensor, batch_size: int) -> dict[str, Any]:
    accumulator = ReconstructionAccumulator()
    for x_BD in x_ND.split(batch_size):
        feats_BF, x_hat_BD = _encode_decode(sae, x_BD)
        accumulator.update(x_BD, x_hat_BD, feats_BF)
    return accumulator.compute()


@pytest.mark.parametrize(
    ("architecture", "fields"),
    [
        ("standard", {}),
        ("jumprelu", {}),
        ("topk", {"k": 8}),
        ("topk", {"k": 8, "rescale_acts_by_decoder_norm": True}),
        ("standard", {"apply_b_dec_to_input": False}),
    ],
)
def test_the_sparse_decode_gives_the_dense_decodes_metrics(architecture: str, fields: dict[str, Any]) -> None:
    x_ND = 3 * torch.randn(N, D_IN, generator=torch.Generator().manual_seed(0))
    sae = _sparse_sae(architecture, x_ND, **fields)
    assert site._sparse_decodable(sae)
    codes_NF, x_hat_ND = site._encode_sparse_decode(sae, x_ND)
    assert codes_NF.layout == torch.sparse_csr  # the sparse path was taken, not the dense fallback
    assert codes_NF.values().numel() < 0.05 * N * D_SAE
    with torch.no_grad():
        torch.testing.assert_close(x_hat_ND, sae.decode(sae.encode(x_ND)), rtol=1e-5, atol=1e-5)
        sparse, dense = site_reconstruction(sae, x_ND, batch_size=128), _dense(sae, x_ND, 128)
    assert {key: sparse[key] for key in EXACT} == {key: dense[key] for key in EXACT}
    for key in ("fvu", "mse", "cosine", "l2_ratio", "relative_reconstruction_bias"):
        assert sparse[key] == pytest.approx(dense[key], rel=1e-6), key


def test_dense_codes_and_normalised_inputs_are_decoded_densely() -> None:
    x_ND = torch.randn(N, D_IN, generator=torch.Generator().manual_seed(1))
    relu = SAE.create_random(
        config_from_dict({"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE}), seed=0
    )
    codes_NF, _ = site._encode_sparse_decode(relu, x_ND)  # about half active: no gain in a sparse matmul
    assert codes_NF.layout == torch.strided
    cfg = {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "normalize_activations": "layer_norm"}
    assert not site._sparse_decodable(SAE.create_random(config_from_dict(cfg), seed=0))
    with torch.no_grad():
        assert site_reconstruction(relu, x_ND) == _dense(relu, x_ND, 1024)


def test_active_counts_of_a_sparse_code_equal_the_dense_counts() -> None:
    feats_NF = torch.relu(torch.randn(50, 40, generator=torch.Generator().manual_seed(2)) - 1.5)
    counts_F = active_counts(feats_NF.to_sparse_csr())
    assert counts_F.dtype == torch.int64 and torch.equal(counts_F, active_counts(feats_NF))
