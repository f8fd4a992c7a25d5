"""The share of pairs without an active latent, and the flag of results where it is most of them."""

from __future__ import annotations

from pseval.metrics.ps_eval import NO_LATENT, mostly_no_active, ps_eval_metrics
from pseval.report.no_active import no_active_cell, no_active_fields, no_active_notes


def test_share_counts_pairs_with_a_silent_context() -> None:
    metrics = ps_eval_metrics([1, 0, 1, 0], [3, NO_LATENT, 5, NO_LATENT], [3, 2, NO_LATENT, NO_LATENT])
    assert metrics.n_pairs_no_active == 3 and metrics.share_pairs_no_active == 0.75
    assert ps_eval_metrics([], [], []).share_pairs_no_active is None


def test_more_than_half_the_pairs_flags_the_result() -> None:
    assert not mostly_no_active(5, 10)  # exactly half: not flagged
    assert mostly_no_active(6, 10)
    assert not mostly_no_active(0, 0) and not mostly_no_active(None, 10)


def test_results_stored_without_the_share_are_flagged_too() -> None:
    row = {"sae": "dead", "n_pairs_no_active": 8, **no_active_fields({"n_pairs_no_active": 8, "n_pairs": 8})}
    assert row["share_pairs_no_active"] == 1.0 and row["mostly_no_active"]
    assert no_active_cell(row) == "8 (100%) !"
    assert no_active_notes([row])[0].startswith("! dead: no active latent: 100% of pairs")
    live = {"sae": "live", "n_pairs_no_active": 0, **no_active_fields({"n_pairs_no_active": 0, "n_pairs": 8})}
    assert no_active_cell(live) == "0" and no_active_notes([live]) == []
