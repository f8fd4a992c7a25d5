"""Result identities: which settings make a stored result another one."""

from __future__ import annotations

from pseval.evals.config import PSEvalConfig


def test_max_pairs_with_multi_token_pairs_is_a_new_identity() -> None:
    # --max-pairs once capped only the single-token pairs under --multi-token last/mean, so such stored
    # results hold more pairs than asked: they must not pass for results of the total cap.
    capped = PSEvalConfig(max_pairs=60, multi_token="last").identity()
    assert capped["max_pairs_scope"] == "single and multi-token pairs together"
    for unchanged in (PSEvalConfig(max_pairs=60), PSEvalConfig(multi_token="mean"), PSEvalConfig()):
        assert "max_pairs_scope" not in unchanged.identity()


def test_allow_model_mismatch_is_not_part_of_the_identity() -> None:
    assert PSEvalConfig(allow_model_mismatch=True).identity() == PSEvalConfig().identity()
