"""Paired comparison of two PS-Eval results on the same pairs (exact McNemar)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pseval.errors import DataError
from pseval.evals.schema import PSEvalResult
from pseval.metrics.uncertainty import mcnemar_exact


def load_result(path: str | Path) -> PSEvalResult:
    """Read a PS-Eval result file, with a clear error when it is missing or not one."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"no result file at {p}", "pass a *_eval_results.json file written by `pseval eval`")
    try:
        return PSEvalResult.model_validate_json(p.read_text(encoding="utf-8"))
    except Exception as exc:
        raise DataError(
            f"{p} is not a PS-Eval result file ({type(exc).__name__})",
            "pass a *_eval_results.json file written by `pseval eval`",
        ) from None


def compare_results(path_a: str | Path, path_b: str | Path) -> dict[str, Any]:
    """Exact McNemar tests on the pairs both results share, plus each side's headline metrics.

    ``mcnemar`` compares accuracy on all shared pairs; ``mcnemar_by_class`` repeats the test on the
    different-meaning pairs (specificity) and on the same-meaning pairs (recall).
    """
    a, b = load_result(path_a), load_result(path_b)
    rows_a = {row.id: row for row in a.eval_result_details}
    rows_b = {row.id: row for row in b.eval_result_details}
    shared = [pid for pid in rows_a if pid in rows_b]
    if not shared:
        raise DataError(
            "the two results share no pair", "compare results computed on the same dataset and split"
        )
    test = mcnemar_exact([rows_a[i].correct for i in shared], [rows_b[i].correct for i in shared])
    # The same exact test within each class: on different-meaning pairs "correct" is a true negative, so it
    # compares specificity; on same-meaning pairs it compares recall.
    by_class: dict[str, Any] = {}
    for metric, label in (("specificity", 0), ("recall", 1)):
        ids = [i for i in shared if rows_a[i].label == label]
        if ids:
            by_class[metric] = mcnemar_exact(
                [rows_a[i].correct for i in ids], [rows_b[i].correct for i in ids]
            ).model_dump()
    return {
        "a": {
            "sae": a.sae_name,
            "hook": a.hook_name,
            **{k: a.metric("ps_eval", k) for k in ("specificity", "recall", "accuracy")},
        },
        "b": {
            "sae": b.sae_name,
            "hook": b.hook_name,
            **{k: b.metric("ps_eval", k) for k in ("specificity", "recall", "accuracy")},
        },
        "mcnemar": test.model_dump(),
        "mcnemar_by_class": by_class,
        "conclusion": (
            f"{'A' if test.a_only_correct > test.b_only_correct else 'B'} is more accurate on the shared pairs"
            f" (p = {test.p_value:.3g}{', significant at 0.05' if test.p_value < 0.05 else ', not significant at 0.05'})"
            if test.a_only_correct != test.b_only_correct
            else f"no difference in accuracy on the {test.n_pairs} shared pairs"
        )
        + "".join(
            f"; {metric} {test['accuracy_a']:.3f} (A) vs {test['accuracy_b']:.3f} (B), p = {test['p_value']:.3g}"
            for metric, test in by_class.items()
        ),
    }
