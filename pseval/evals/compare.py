"""Paired comparison of two PS-Eval results on the same pairs (exact McNemar)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pseval.errors import DataError, validation_details
from pseval.evals.schema import PSEvalResult, checksum_mismatch, edited_problem
from pseval.metrics.uncertainty import mcnemar_exact


def load_result(path: str | Path) -> PSEvalResult:
    """Read a PS-Eval result file, with a clear error when it is missing or not one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no result file at {p}", "pass a *_eval_results.json file written by `pseval eval`")
    try:
        raw = json.loads(p.read_text(encoding="utf-8"))
        result = PSEvalResult.model_validate(raw)
    except Exception as exc:
        # A ValidationError names the fields (or, for a file that is not JSON, the parse error).
        raise DataError(
            f"{p} is not a PS-Eval result file ({validation_details(exc)})",
            "pass a *_eval_results.json file written by `pseval eval`",
        ) from None
    if checksum_mismatch(raw):
        raise DataError(edited_problem(p), "recompute it with `pseval eval ... --force-rerun`")
    return result


ALPHA = 0.05
"""Significance level the verdicts use (the p-values themselves are always reported)."""

CLASSES: tuple[tuple[str, str, int | None], ...] = (
    ("accuracy", "all pairs", None),
    ("specificity", "different meaning", 0),
    ("recall", "same meaning", 1),
)
"""Rows of the comparison: on different-meaning pairs "correct" is a true negative, so the test compares
specificity; on same-meaning pairs it compares recall; on all pairs, accuracy."""


def _side(result: PSEvalResult, path: Path) -> dict[str, Any]:
    return {
        "file": str(path),
        "sae": result.sae_name,
        "hook": result.hook_name,
        "eval_id": result.eval_id,
        **{k: result.metric("ps_eval", k) for k in ("specificity", "recall", "accuracy")},
    }


def same_result(path_a: Path, a: PSEvalResult, path_b: Path, b: PSEvalResult) -> bool:
    """Whether two files hold the same result (one file twice, a copy, or one run's output twice)."""
    if path_a.resolve() == path_b.resolve():
        return True
    return (
        a.sae_cfg_dict == b.sae_cfg_dict
        and a.hook_name == b.hook_name
        and a.eval_config == b.eval_config
        and [(d.id, d.latent_1, d.latent_2, d.correct) for d in a.eval_result_details]
        == [(d.id, d.latent_1, d.latent_2, d.correct) for d in b.eval_result_details]
    )


def verdict(metric: str, row: dict[str, Any]) -> str:
    """One neutral sentence per row: which side is higher only when the exact test says so."""
    a, b, p = row["value_a"], row["value_b"], row["p_value"]
    values = f"{a:.3f} (A) vs {b:.3f} (B), exact McNemar p = {p:.3g}"
    if row["a_only_correct"] == row["b_only_correct"] == 0:
        return f"{metric}: identical outcome on all {row['n_pairs']} pairs"
    if p < ALPHA:
        higher = "A" if row["a_only_correct"] > row["b_only_correct"] else "B"
        return f"{metric}: {higher} is higher, {values}"
    return f"{metric}: no significant difference at {ALPHA:g}, {values}"


def compare_results(path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """Exact McNemar tests on the pairs both results share: on all pairs and within each class.

    Each row of ``by_class`` holds the pairs of that class, how many each side gets right, the pairs only
    one side gets right (the test's discordant pairs), the difference B − A of the metric and the two-sided
    exact p-value. ``same_result`` is true when both files hold one and the same result.
    """
    pa, pb = Path(path_a), Path(path_b)
    a, b = load_result(pa), load_result(pb)
    rows_a = {row.id: row for row in a.eval_result_details}
    rows_b = {row.id: row for row in b.eval_result_details}
    shared = [pid for pid in rows_a if pid in rows_b]
    if not shared:
        raise DataError(
            "the two results share no pair", "compare results computed with the same --dataset and --split"
        )
    by_class: list[dict[str, Any]] = []
    for metric, pairs, label in CLASSES:
        ids = [i for i in shared if label is None or rows_a[i].label == label]
        if not ids:
            continue
        correct_a = [rows_a[i].correct for i in ids]
        correct_b = [rows_b[i].correct for i in ids]
        test = mcnemar_exact(correct_a, correct_b)
        row = {
            "metric": metric,
            "pairs": pairs,
            "n_pairs": len(ids),
            "correct_a": int(sum(correct_a)),
            "correct_b": int(sum(correct_b)),
            "a_only_correct": test.a_only_correct,
            "b_only_correct": test.b_only_correct,
            "value_a": test.accuracy_a,
            "value_b": test.accuracy_b,
            "difference": (test.accuracy_b or 0.0) - (test.accuracy_a or 0.0),
            "p_value": test.p_value,
        }
        row["verdict"] = verdict(metric, row)
        by_class.append(row)
    return {
        "a": _side(a, pa),
        "b": _side(b, pb),
        "same_result": same_result(pa, a, pb, b),
        "n_shared_pairs": len(shared),
        "n_pairs_a": len(rows_a),
        "n_pairs_b": len(rows_b),
        "alpha": ALPHA,
        "by_class": by_class,
    }
