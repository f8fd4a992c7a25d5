"""The README and docs/performance.md quote the release-scale benchmark's goals as its committed artifacts say:
the table is made from ``benchmarks/results/scale_fewer_passes.json`` by the benchmark's own function, the two
reruns of that code are quoted from theirs; the earlier runs the performance page still discusses are quoted from
their own artifacts."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "benchmarks" / "results" / "scale_fewer_passes.json"
RUNS = (ARTIFACT.name, "scale_fewer_passes_rerun.json", "scale_fewer_passes_rerun2.json")
"""The three runs of the current code, the table's first."""
READS_ALONE = ARTIFACT.parent / "scale_read_while_loading.json"
"""The run with the SAE files read while the model loads, before the other changes of the current code."""
MAPPED = ARTIFACT.parent / "scale_mapped_xxh3.json"
"""The first of three runs of the code before (identity hashed with xxh3, encoder scored from the page cache)."""
NO_SKLEARN = ARTIFACT.parent / "scale_no_sklearn.json"
"""The run before the one to trust (an eval without scikit-learn), discussed under "Earlier runs"."""
PREVIOUS = ARTIFACT.parent / "scale_buffers_reused.json"
"""The run before that (scoring buffers reused)."""


def _bench_scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", REPO / "benchmarks" / "bench_scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_scale", module)  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


def test_the_docs_quote_the_goals_table_of_the_artifact() -> None:
    result = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    table = _bench_scale().goals_markdown(result)
    for doc in (REPO / "README.md", REPO / "docs" / "performance.md"):
        assert table in doc.read_text(encoding="utf-8"), (
            f"{doc.name} does not quote {ARTIFACT.name}:\n{table}"
        )
    before = _bench_scale().goals_markdown(json.loads(MAPPED.read_text(encoding="utf-8")))
    assert before in (REPO / "docs" / "performance.md").read_text(encoding="utf-8")


def test_the_goals_are_judged_on_the_medians_of_three_interleaved_rounds() -> None:
    for name in (*RUNS, READS_ALONE.name, MAPPED.name):
        result = json.loads((ARTIFACT.parent / name).read_text(encoding="utf-8"))
        assert {side["n"] for side in result["seconds"].values()} == {3}, name
        for row in result["goals"]:
            ratio = round(row["pseval"] / row["reference_value"], 2)
            assert abs(ratio - row["ratio_median"]) <= 0.011, (name, row)
            assert row["met"] == (row["ratio_median"] <= row["goal_max"]), (name, row)


def test_the_readme_quotes_what_each_side_read_and_the_interpretation_share() -> None:
    result = json.loads(ARTIFACT.read_text(encoding="utf-8"))
    read = result["disk_read_mib_per_extra_sae"]
    share = result["default_eval_shares"]["interpret_share_of_default_eval_1"]
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"fetch {read['pseval_same_work']:.0f} MiB from disk, the\nlimit's {read['limit']:.0f} MiB" in text
    assert f"({read['peer']:.0f} MiB per SAE)" in text or f"{read['peer']:.0f} MiB per SAE" in text
    assert f"The interpretation pass is {share:.0%}".replace("%", " %") in text
    shares = [_result(run)["default_eval_shares"]["interpret_share_of_default_eval_1"] for run in RUNS]
    spread = f"{min(shares) * 100:.0f}–{max(shares):.0%}"
    assert f"({spread} over the three runs".replace("%", " %") in text
    assert spread.replace("%", "\u00a0%") + " of a default eval" in (  # kept on one line in --help
        REPO / "pseval" / "evals" / "config.py"
    ).read_text(encoding="utf-8")


def test_the_printed_goals_table_fits_80_columns_whatever_the_figures() -> None:
    """Quick runs give any figures at all (a faster run of more SAEs makes a negative marginal)."""
    extremes = ((-0.53, -23.8), (1234.5, 123.45), (0.001, 98765.4), (-9999.0, -0.004), (9999.0, -999.5))
    seconds = [
        ("+1 SAE of 32, same work", "limit_def/SAE", value, -value, ratio) for value, ratio in extremes
    ]
    memory = [("peak RSS, 32 vs 1 SAE", "1 SAE", value, value, 1.0) for value in (1.0, 99999.0)]
    rows = [
        {
            "figure": figure,
            "pseval": value,
            "reference": reference,
            "reference_value": reference_value,
            "unit": "MiB" if figure.startswith("peak") else "s",
            "ratio_median": ratio,
            "ratio_min": -ratio,
            "goal_max": 1.15,
            "met": met,
        }
        for figure, reference, value, reference_value, ratio in [*seconds, *memory]
        for met in (True, False)
    ]
    table = _bench_scale().goals_table(rows)
    assert all(len(line) <= 80 for line in table.splitlines()), table


def _result(name: str) -> dict[str, Any]:
    return dict(json.loads((ARTIFACT.parent / name).read_text(encoding="utf-8")))


def test_the_readme_says_every_goal_is_met_in_each_of_three_runs() -> None:
    many = []
    for name in RUNS:
        goals, many_goal, _ = _many_and_plus(name)
        assert all(g["met"] for g in goals.values()), name
        many.append(many_goal)
    text = _flat(REPO / "README.md")
    medians = [f"{g['ratio_median']:.2f}×" for g in many]
    minima = [f"{g['ratio_min']:.2f}×" for g in many]
    assert (
        f"32 SAEs at {medians[0]}, {medians[1]} and {medians[2]} the peer ({minima[0]}, {minima[1]} and "
        f"{minima[2]} on the minima" in text
    )
    assert "where the code before met it in one run of three" in text


def test_the_performance_page_quotes_the_current_code_from_its_three_runs() -> None:
    goals = [_many_and_plus(name)[0] for name in RUNS]
    many, plus, defaults = "32 SAEs, same work", "+1 SAE of 32, same work", "1 SAE, defaults"
    text = _flat(REPO / "docs" / "performance.md")
    first, second, third = goals
    assert (
        f"**32 SAEs: {first[many]['ratio_median']:.2f}× the peer ({first[many]['ratio_min']:.2f}× on the minima)**, "
        f"and **{second[many]['ratio_median']:.2f}×** ({second[many]['ratio_min']:.2f}×) and "
        f"**{third[many]['ratio_median']:.2f}×** ({third[many]['ratio_min']:.2f}×) in two reruns" in text
    )
    assert "the 0.8× goal is met in three runs of three, against one of three before" in text
    assert (
        f"Each further SAE: {first[plus]['pseval']:.2f} s against the limit's {first[plus]['reference_value']:.2f} s "
        f"({first[plus]['ratio_median']:.2f}×)**" in text
    )
    assert (
        f"({first[plus]['ratio_min']:.2f}× on the minima; {second[plus]['ratio_median']:.2f}× and "
        f"{third[plus]['ratio_median']:.2f}× in the two reruns)" in text
    )
    assert (
        f"One SAE with the defaults: {first[defaults]['ratio_median']:.2f}× its floor** "
        f"({second[defaults]['ratio_median']:.2f}× and {third[defaults]['ratio_median']:.2f}× in the reruns)"
        in text
    )
    peers = sorted(run["seconds"] for run in _result(RUNS[0])["runs"]["peer_32"])
    assert (
        f"The peer's 32 SAEs took {peers[0]:.1f}–{peers[-1]:.1f} s over the rounds of the first run" in text
    )
    alone = {g["figure"]: g for g in _result(READS_ALONE.name)["goals"]}[many]
    assert (
        f"put 32 SAEs at **{alone['ratio_median']:.2f}×** the peer ({alone['ratio_min']:.2f}× on the minima)"
        in text
    )
    assert not alone["met"]


def test_the_performance_page_quotes_the_xxh3_run_from_its_artifact() -> None:
    now = json.loads(MAPPED.read_text(encoding="utf-8"))
    before = json.loads(NO_SKLEARN.read_text(encoding="utf-8"))
    text = " ".join((REPO / "docs" / "performance.md").read_text(encoding="utf-8").split())
    n, seconds = now["n_saes_many"], now["seconds"]
    goals = {g["figure"]: g for g in now["goals"]}
    plus, many, defaults = (
        goals[f"+1 SAE of {n}, same work"],
        goals[f"{n} SAEs, same work"],
        goals["1 SAE, defaults"],
    )
    assert (
        f"Each further SAE: {plus['pseval']:.2f} s against the limit's {plus['reference_value']:.2f} s "
        f"({plus['ratio_median']:.2f}×)**, from {before['pseval_per_extra_sae_seconds']['median']:.2f} s"
        in text
    )
    assert f"{n} SAEs: {many['ratio_median']:.2f}× the peer ({many['ratio_min']:.2f}× on the minima)" in text
    peers = sorted(run["seconds"] for run in now["runs"][f"peer_{n}"])
    assert f"the peer's {n} SAEs took {peers[0]:.1f}–{peers[-1]:.1f} s over the rounds" in text
    assert f"{defaults['ratio_median']:.2f}× its floor ({defaults['ratio_min']:.2f}× on the minima)" in text
    rss, rss_before = now["peak_rss_mib"]["pseval_same_work_1"], before["peak_rss_mib"]["pseval_same_work_1"]
    assert f"one SAE {rss['median']:.0f} MiB against {rss_before['median']:.0f} MiB in the run below" in text
    assert f"{n} SAEs {now['peak_rss_ratio_many_vs_one']:.2f}× one" in text
    shares = [r["default_eval_shares"]["interpret_share_of_default_eval_1"] for r in (now, before)]
    assert f"{shares[0]:.0%} of a default eval ({shares[1]:.0%} in the run below".replace("%", " %") in text
    peer_now, peer_before = seconds[f"peer_{n}"]["median"], before["seconds"][f"peer_{n}"]["median"]
    assert f"took {peer_now:.1f} s here, {peer_before:.1f} s in the run below" in text


def test_the_performance_page_quotes_the_run_without_scikit_learn_against_the_one_before() -> None:
    now = json.loads(NO_SKLEARN.read_text(encoding="utf-8"))
    before = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    text = " ".join((REPO / "docs" / "performance.md").read_text(encoding="utf-8").split())
    one, one_before = now["seconds"]["pseval_same_work_1"], before["seconds"]["pseval_same_work_1"]
    rss, rss_before = now["peak_rss_mib"]["pseval_same_work_1"], before["peak_rss_mib"]["pseval_same_work_1"]
    assert f"took {one['median']:.2f} s against {one_before['median']:.2f} s in the run below" in text
    assert f"peak RSS is {rss['median']:.0f} MiB against {rss_before['median']:.0f} MiB" in text

    def ratio(result: dict[str, Any], figure: str) -> float:
        return float(next(g["ratio_median"] for g in result["goals"] if g["figure"] == figure))

    same, defaults = "1 SAE, same work", "1 SAE, defaults"
    assert f"{ratio(now, same):.2f}× the peer** ({ratio(before, same):.2f}× in the run below)" in text
    assert f"{ratio(now, defaults):.2f}× their floor** ({ratio(before, defaults):.2f}×)" in text
    n = now["n_saes_many"]
    seconds, limit = now["seconds"], now["limit_per_sae_seconds"]["median"]
    peer_one, peer_many = seconds["peer_1"]["median"], seconds[f"peer_{n}"]["median"]
    room = (0.8 * peer_many - seconds["pseval_same_work_1"]["median"]) / (n - 1)
    assert f"leaves room for {room:.2f} s per further SAE, between the limit's {limit:.2f} s" in text
    assert f"pseval's {now['pseval_per_extra_sae_seconds']['median']:.2f} s" in text
    assert f"further SAE costs {(peer_many - peer_one) / (n - 1):.2f} s" in text
    peers = peer_many, before["seconds"][f"peer_{n}"]["median"]
    assert f"took {peers[0]:.1f} s here, {peers[1]:.1f} s there" in text


def test_the_performance_page_quotes_the_fixed_parts_and_the_peers_read_from_the_artifacts() -> None:
    result = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    before = json.loads((ARTIFACT.parent / "scale_read_once.json").read_text(encoding="utf-8"))
    seconds, n = result["seconds"], result["n_saes_many"]
    fixed = seconds["pseval_same_work_1"]["median"] - result["pseval_per_extra_sae_seconds"]["median"]
    limit_parts = result["parts_median_s"]["limit_1"]
    text = " ".join((REPO / "docs" / "performance.md").read_text(encoding="utf-8").split())
    floor = limit_parts["model_load_s"] + limit_parts["forward_sorted_s"]
    assert f"forward pass: {fixed:.1f} s against the limit's {floor:.1f} s" in text
    assert f"{result['disk_read_mib_per_extra_sae']['peer']:.1f} MiB fetched per SAE" in text
    peers = seconds[f"peer_{n}"]["median"], before["seconds"][f"peer_{n}"]["median"]
    assert f"took {peers[0]:.1f} s here, {peers[1]:.1f} s there" in text


def test_the_readme_quotes_the_1m_latent_run_as_its_artifact_says() -> None:
    huge = json.loads((ARTIFACT.parent / "scale_huge_buffers_reused.json").read_text(encoding="utf-8"))
    ours, limit = huge["seconds"]["pseval_same_work"]["median"], huge["seconds"]["limit"]["median"]
    rss = huge["peak_rss_mib"]
    over_gib = (rss["pseval_same_work"]["median"] - rss["forward"]["median"]) / 1024
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"128 pairs: {ours:.1f} s vs {limit:.1f} s, **{ours / limit:.2f}×** the limit" in text
    assert (
        f"peak RSS {rss['pseval_same_work']['median']:,.0f} MiB, the model's + **{over_gib:.2f} GiB**" in text
    )
    assert ours / limit <= 1.5 and over_gib * 1024**3 <= 3e9  # the goals: 1.5x the limit, model + 3 GB


def test_the_performance_page_quotes_the_runs_against_the_limits_that_kept_the_prompts_order() -> None:
    """The limits now run the model longest first; what the same code measured against the old ones is quoted
    from their own artifacts."""
    results = ARTIFACT.parent
    now = json.loads(PREVIOUS.read_text(encoding="utf-8"))
    before = json.loads((results / "scale_limit_in_order.json").read_text(encoding="utf-8"))
    huge = json.loads((results / "scale_huge_limit_in_order.json").read_text(encoding="utf-8"))
    text = " ".join((REPO / "docs" / "performance.md").read_text(encoding="utf-8").split())

    def defaults(result: dict[str, object]) -> float:
        return next(g["ratio_median"] for g in result["goals"] if g["figure"] == "1 SAE, defaults")  # type: ignore[attr-defined,index]

    assert f"the defaults at {defaults(before):.2f}× their floor" in text
    assert f"they take {defaults(now):.2f}×" in text
    forward = sorted(r["forward_s"] for r in huge["runs"]["limit"])
    assert f"took {forward[0]:.1f}–{forward[-1]:.1f} s that way" in text
    assert f"pseval came to {huge['ratio_same_work_vs_limit']['median']:.2f}× that limit" in text
    parts = now["parts_median_s"]["forward_0"]
    assert (
        f"({parts['forward_sorted_s']:.1f} s here, against {parts['forward_s']:.1f} s in the prompts' order"
        in text
    )


@pytest.mark.parametrize("artifact", ["scale_huge_fewer_passes.json", "scale_huge_no_sklearn.json"])
def test_the_docs_quote_the_1m_latent_reruns_as_their_artifacts_say(artifact: str) -> None:
    huge = json.loads((ARTIFACT.parent / artifact).read_text(encoding="utf-8"))
    ratio, limit_runs = huge["ratio_same_work_vs_limit"], huge["runs"]["limit"]
    readme = _flat(REPO / "README.md")
    assert f"**{ratio['median']:.2f}×** the limit ({ratio['min']:.2f}× on the minima;" in readme
    page = (REPO / "docs" / "performance.md").read_text(encoding="utf-8")
    seconds = huge["seconds"]
    forward = sorted(run["forward_sorted_s"] for run in limit_runs)
    row = next(line for line in page.splitlines() if f"results/{artifact})" in line)  # its table row
    assert (
        f"| {seconds['pseval_same_work']['median']:.1f} s | {seconds['limit']['median']:.1f} s "
        f"(forward {forward[0]:.1f}–{forward[-1]:.1f} s," in row
    )
    assert f"| **{ratio['median']:.2f}×** ({ratio['min']:.2f}× on the minima) |" in row
    rss = huge["peak_rss_mib"]
    over_gib = (rss["pseval_same_work"]["median"] - rss["forward"]["median"]) / 1024
    assert ratio["median"] <= 1.5 and over_gib * 1024**3 <= 3e9  # the goals, on the medians


def _many_and_plus(artifact: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """A run's goals by figure, its 32-SAE goal and its further-SAE goal."""
    result = json.loads((ARTIFACT.parent / artifact).read_text(encoding="utf-8"))
    n = result["n_saes_many"]
    goals = {g["figure"]: g for g in result["goals"]}
    return goals, goals[f"{n} SAEs, same work"], goals[f"+1 SAE of {n}, same work"]


def _flat(doc: Path) -> str:
    return " ".join(doc.read_text(encoding="utf-8").split())


def test_the_docs_quote_the_second_run_of_the_same_code_as_its_artifact_says() -> None:
    """The 32-SAE goal sits within the run-to-run spread: the second run, which misses it, is quoted too."""
    goals, many, plus = _many_and_plus("scale_mapped_xxh3_rerun.json")
    page = _flat(REPO / "docs" / "performance.md")
    assert f"missed it: **{many['ratio_median']:.2f}×** ({many['ratio_min']:.2f}× on the minima)" in page
    assert (
        f"each further SAE at {plus['pseval']:.2f} s against the limit's {plus['reference_value']:.2f} s"
        in page
    )
    assert not many["met"] and all(g["met"] for figure, g in goals.items() if g is not many)


def test_the_docs_quote_the_third_run_as_its_artifact_says() -> None:
    _, many, plus = _many_and_plus("scale_mapped_xxh3_rerun2.json")
    page = _flat(REPO / "docs" / "performance.md")
    assert (
        f"gave **{many['ratio_median']:.2f}×** ({many['ratio_min']:.2f}× on the minima; a further SAE" in page
    )
    assert f"{plus['pseval']:.2f} s against the limit's {plus['reference_value']:.2f} s" in page
    runs = (MAPPED.name, "scale_mapped_xxh3_rerun.json", "scale_mapped_xxh3_rerun2.json")
    met = [_many_and_plus(run)[1]["met"] for run in runs]
    assert met == [True, False, False]
