"""The random-SAE control: centred inputs, per-pair rows, and the paired tests of the SAE against it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pseval.evals.random_control import compare_with_control, control_centre, random_control_stats
from pseval.metrics.blockwise import code_stats
from pseval.sae.config import config_from_dict
from pseval.sae.lazy import InMemoryBlocks, RandomBlocks, feature_blocks
from pseval.sae.model import SAE

D_IN, D_SAE, N_PROMPTS = 48, 512, 300


def _shared_mean_acts(seed: int = 0) -> torch.Tensor:
    """Hook vectors dominated by one shared direction (norm 40) with small prompt-specific parts (norm ~1)."""
    gen = torch.Generator().manual_seed(seed)
    mean_D = torch.randn(D_IN, generator=gen)
    mean_D = 40 * mean_D / mean_D.norm()
    return mean_D + torch.randn(N_PROMPTS, D_IN, generator=gen) / D_IN**0.5


def _blocks(apply_b_dec_to_input: bool, b_dec: torch.Tensor | None = None) -> InMemoryBlocks:
    cfg = config_from_dict(
        {
            "architecture": "standard",
            "d_in": D_IN,
            "d_sae": D_SAE,
            "apply_b_dec_to_input": apply_b_dec_to_input,
        }
    )
    sae = SAE.create_random(cfg, seed=1)
    if b_dec is not None:
        with torch.no_grad():
            sae.b_dec.copy_(b_dec)
    return InMemoryBlocks(sae)


def _distinct_top_latents(acts_PD: torch.Tensor, blocks: InMemoryBlocks) -> int:
    pairs = [(i, i + 1) for i in range(0, N_PROMPTS, 2)]
    stats = code_stats(feature_blocks(RandomBlocks(blocks.cfg, seed=0), acts_PD), N_PROMPTS, pairs, 4)
    return int(torch.unique(stats.top_index_P).numel())


@pytest.mark.parametrize("apply_b_dec_to_input", [False, True])
def test_centred_control_no_longer_has_a_near_constant_top_latent(apply_b_dec_to_input: bool) -> None:
    acts = _shared_mean_acts()
    # An SAE that subtracts b_dec learns roughly the mean as b_dec; one that does not is centred by the mean.
    blocks = _blocks(apply_b_dec_to_input, acts.mean(0) if apply_b_dec_to_input else None)
    uncentred = _distinct_top_latents(acts, blocks)
    pairs = [(i, i + 1) for i in range(0, N_PROMPTS, 2)]
    stats, centring = random_control_stats(blocks, acts, pairs, topk_overlap_k=4, seed=0)
    centred = int(torch.unique(stats.top_index_P).numel())
    assert centring == ("sae_b_dec" if apply_b_dec_to_input else "dataset_mean")
    # Uncentred, a handful of latents aligned with the shared mean win every prompt.
    assert uncentred <= 5 and centred >= 60, (uncentred, centred)
    # Nearly every pair gets "same" uncentred (recall inflated), few do centred.
    same_uncentred = _same_share(acts, blocks, pairs)
    same_centred = float(np.mean(stats.top_index_P[::2].numpy() == stats.top_index_P[1::2].numpy()))
    assert same_uncentred > 0.5 > 0.2 > same_centred


def _same_share(acts: torch.Tensor, blocks: InMemoryBlocks, pairs: list[tuple[int, int]]) -> float:
    stats = code_stats(feature_blocks(RandomBlocks(blocks.cfg, seed=0), acts), N_PROMPTS, pairs, 4)
    top = stats.top_index_P.numpy()
    return float(np.mean(top[::2] == top[1::2]))


def test_control_centre_is_the_sae_b_dec_or_the_dataset_mean() -> None:
    acts = _shared_mean_acts(3)
    b_dec = torch.arange(D_IN, dtype=torch.float32)
    centre, how = control_centre(_blocks(True, b_dec), acts)
    assert how == "sae_b_dec" and torch.equal(centre, b_dec)
    centre, how = control_centre(_blocks(False, b_dec), acts)
    assert how == "dataset_mean" and torch.allclose(centre, acts.mean(0))


def test_mean_centre_is_taken_in_the_space_the_sae_reads() -> None:
    # An SAE that rescales each input to norm sqrt(d_in) sees the mean of the rescaled vectors.
    acts = _shared_mean_acts(4) * torch.linspace(0.5, 3.0, N_PROMPTS)[:, None]
    cfg = config_from_dict(
        {"architecture": "standard", "d_in": D_IN, "d_sae": D_SAE, "apply_b_dec_to_input": False,
         "normalize_activations": "constant_norm_rescale"}
    )  # fmt: skip
    centre, how = control_centre(InMemoryBlocks(SAE.create_random(cfg, seed=1)), acts)
    rescaled = acts * (D_IN**0.5 / acts.norm(dim=-1, keepdim=True))
    assert how == "dataset_mean" and torch.allclose(centre, rescaled.mean(0), atol=1e-5)


def test_sae_against_control_is_an_exact_mcnemar_test_on_a_hand_example() -> None:
    # 24 pairs, two per word. The SAE is right on all; the control is right on the first 10 only.
    labels = np.array([1, 0] * 12)
    sae_same = labels == 1
    control_same = sae_same.copy()
    control_same[10:] = ~control_same[10:]
    words = [f"w{i // 2}" for i in range(24)]
    result = compare_with_control(labels, sae_same, control_same, words, 2000, 0.95, 0, "dataset_mean")
    assert (result.sae_only_correct, result.random_only_correct) == (14, 0)
    assert result.accuracy_p_value == pytest.approx(2 * 0.5**14)
    assert result.accuracy_difference == pytest.approx(14 / 24)
    # Control: recall 5/12, specificity 5/12 → J = -1/6; the SAE's J is 1.
    assert result.youden_j_difference == pytest.approx(1 + 1 / 6)
    assert result.youden_j_difference_low is not None and result.youden_j_difference_low > 0
    assert result.beats_on_accuracy and result.beats_on_youden_j
    # Holm over the two tests: the smaller p doubled, the larger at least as large.
    assert result.accuracy_p_holm == pytest.approx(2 * result.accuracy_p_value)
    assert result.youden_j_p_holm is not None and result.youden_j_p_holm >= result.accuracy_p_holm


def test_no_verdict_when_the_control_does_as_well_or_better() -> None:
    labels = np.array([1, 0] * 12)
    right = labels == 1
    worse = right.copy()
    worse[:3] = ~worse[:3]
    words = [f"w{i // 2}" for i in range(24)]
    tie = compare_with_control(labels, right, right, words, 500, 0.95, 0, "sae_b_dec")
    assert tie.accuracy_p_value == 1.0 and not tie.beats_on_accuracy and tie.beats_on_youden_j is False
    reverse = compare_with_control(labels, worse, right, words, 500, 0.95, 0, "sae_b_dec")
    assert not reverse.beats_on_accuracy and reverse.beats_on_youden_j is False
    no_bootstrap = compare_with_control(labels, right, worse, words, 0, 0.95, 0, "sae_b_dec")
    assert no_bootstrap.youden_j_p_value is None and no_bootstrap.beats_on_youden_j is None
    assert no_bootstrap.youden_j_difference_low is None
