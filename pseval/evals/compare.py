"""Paired comparison of two PS-Eval results on the same pairs.

Exact McNemar tests on accuracy (all pairs), specificity (different-meaning pairs) and recall (same-meaning
pairs), and a paired word-clustered bootstrap of the difference in Youden's J. The four p-values are one
family: each verdict uses its Holm-adjusted p-value, so comparing several metrics at once does not multiply
the chance of a spurious "higher".
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from pseval.errors import DataError, validation_details
from pseval.evals.schema import PSEvalResult, checksum_mismatch, edited_problem
from pseval.metrics.ps_eval import confusion_counts, metrics_from_counts
from pseval.metrics.uncertainty import (
    WORD_CLUSTERED,
    ClusterBootstrap,
    holm,
    mcnemar_exact,
    resampled_metrics,
)

J_RESAMPLES = 2000
"""Bootstrap resamples of the paired J difference."""


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
    adjusted = row.get("p_value_holm", p)
    values = f"{a:.3f} (A) vs {b:.3f} (B), exact McNemar p = {p:.3g} (Holm-adjusted {adjusted:.3g})"
    if row["a_only_correct"] == row["b_only_correct"] == 0:
        return f"{metric}: identical outcome on all {row['n_pairs']} pairs"
    if adjusted < ALPHA:
        higher = "A" if row["a_only_correct"] > row["b_only_correct"] else "B"
        return f"{metric}: {higher} is higher, {values}"
    return f"{metric}: no significant difference at {ALPHA:g}, {values}"


def compare_results(path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """Exact McNemar tests on the pairs both results share: on all pairs and within each class.

    Each row of ``by_class`` holds the pairs of that class, how many each side gets right, the pairs only
    one side gets right (the test's discordant pairs), the difference B − A of the metric and the two-sided
    exact p-value with its Holm-adjusted value (``p_value_holm``, which the verdict uses); ``youden_j`` holds
    the paired word-clustered bootstrap of the J difference (see :func:`compare_youden_j`). ``same_result``
    is true when both files hold one and the same result.
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
        by_class.append(row)
    labels = [rows_a[i].label for i in shared]
    youden = compare_youden_j(
        labels,
        [rows_a[i].predicted_same for i in shared],
        [rows_b[i].predicted_same for i in shared],
        [rows_a[i].word for i in shared],
    )
    family = [row["p_value"] for row in by_class] + (
        [youden["p_value"]] if youden["p_value"] is not None else []
    )
    adjusted = holm(family)
    for tested, p_holm in zip(by_class, adjusted, strict=False):
        tested["p_value_holm"] = float(p_holm)
        tested["verdict"] = verdict(tested["metric"], tested)
    if youden["p_value"] is not None:
        youden["p_value_holm"] = float(adjusted[-1])
    youden["verdict"] = youden_verdict(youden)
    return {
        "a": _side(a, pa),
        "b": _side(b, pb),
        "same_result": same_result(pa, a, pb, b),
        "n_shared_pairs": len(shared),
        "n_pairs_a": len(rows_a),
        "n_pairs_b": len(rows_b),
        "alpha": ALPHA,
        "by_class": by_class,
        "youden_j": youden,
    }


def compare_youden_j(
    labels: list[int], same_a: list[bool], same_b: list[bool], words: list[str], seed: int = 0
) -> dict[str, Any]:
    """Youden's J of both sides, B − A, and its paired word-clustered bootstrap interval and p-value."""
    j_a = metrics_from_counts(*confusion_counts(labels, same_a)).youden_j
    j_b = metrics_from_counts(*confusion_counts(labels, same_b)).youden_j
    boot = ClusterBootstrap(len(labels), words, J_RESAMPLES, seed)
    # One instance, so both sides see the same resamples of words: the difference is paired.
    differences = (
        resampled_metrics(boot, labels, same_b)["youden_j"]
        - resampled_metrics(boot, labels, same_a)["youden_j"]
    )
    interval = boot.interval(differences, 0.95)
    defined = j_a is not None and j_b is not None and bool(np.all(np.isfinite(differences)))
    far_side = min(int(np.sum(differences <= 0)), int(np.sum(differences >= 0))) if defined else 0
    return {
        "value_a": j_a,
        "value_b": j_b,
        "difference": None if j_a is None or j_b is None else j_b - j_a,
        "difference_low": interval.low,
        "difference_high": interval.high,
        "confidence_level": 0.95,
        "p_value": min(1.0, 2.0 * (far_side + 1) / (J_RESAMPLES + 1)) if defined else None,
        "n_resamples": J_RESAMPLES,
        "interval_method": WORD_CLUSTERED,
    }


def youden_verdict(row: dict[str, Any]) -> str:
    """The J comparison in one sentence, naming a higher side only when the adjusted test says so."""
    if row["p_value"] is None:
        return "Youden's J: undefined (a class has no pair)"
    if row["difference"] == 0 and row["difference_low"] == row["difference_high"] == 0:
        return "Youden's J: identical on the shared pairs"
    values = (
        f"{row['value_a']:.3f} (A) vs {row['value_b']:.3f} (B), B − A {row['difference']:+.3f} "
        f"[{row['difference_low']:.2f}, {row['difference_high']:.2f}], paired word-clustered bootstrap "
        f"p = {row['p_value']:.3g} (Holm-adjusted {row['p_value_holm']:.3g})"
    )
    if row["p_value_holm"] < ALPHA:
        return f"Youden's J: {'B' if row['difference'] > 0 else 'A'} is higher, {values}"
    return f"Youden's J: no significant difference at {ALPHA:g}, {values}"
