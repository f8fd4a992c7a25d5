"""Training modules encode through the exported architecture's kernel: their inference latents match the
exported SAE's (up to the rounding of training's fused pre-activation matmul)."""

from __future__ import annotations

import pytest
import torch

from pseval.sae.model import SAE
from pseval.training.architectures import TRAINING_SAES
from pseval.training.config import TrainConfig


@pytest.mark.parametrize("architecture", sorted(TRAINING_SAES))
def test_training_encode_matches_the_exported_sae(architecture: str) -> None:
    gen = torch.Generator().manual_seed(3)
    config = TrainConfig(architecture=architecture, k=6)  # type: ignore[arg-type]
    module = TRAINING_SAES[architecture](32, 96, config, gen)
    with torch.no_grad():
        for param in module.parameters():
            param.add_(torch.randn(param.shape, generator=gen) * 0.05)
        if architecture == "jumprelu":  # thresholds that cut some positive pre-activations
            module.log_threshold.fill_(-1.5)
    x_ND = torch.randn(40, 32, generator=gen)
    if architecture in ("batchtopk", "matryoshka_batchtopk"):
        module.training_step(x_ND, 0.0, None)  # one step records a threshold
        module.after_optimizer_step(module.training_step(x_ND, 0.0, None))
    exported = SAE.from_state_dict(module.inference_config(), module.inference_state(1.0))
    with torch.no_grad():
        ours_NF, theirs_NF = module.encode(x_ND), exported.encode(x_ND)
        if not module.unit_norm_decoder:  # the export folds decoder norms into the activations
            ours_NF = ours_NF * module.W_dec.norm(dim=1)
    assert int((ours_NF > 0).sum()) > 0
    if architecture not in ("standard", "gated"):  # rules that cut positive pre-activations
        assert int((ours_NF > 0).sum()) < int((module.pre_acts(x_ND) > 0).sum())
    assert torch.equal(ours_NF > 0, theirs_NF > 0)
    torch.testing.assert_close(ours_NF, theirs_NF, rtol=1e-5, atol=1e-5)
