"""The release-scale benchmark runs end to end in its quick mode (so it cannot rot; its figures mean nothing)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_scale.py"


def test_bench_scale_quick_writes_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    env = {**os.environ, "PYTHONPATH": str(SCRIPT.parents[1])}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)],
        capture_output=True, text=True, env=env, timeout=3600, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(out.read_text())
    for side in (
        "pseval_default_1",
        "pseval_same_work_1",
        "peer_1",
        "limit_1",
        "limit_default_1",
        "pseval_same_work_2",
        "peer_2",
    ):
        assert report["seconds"][side]["min"] > 0, side
    assert set(report["ratios"]) >= {
        "default_1_vs_limit_default_1",
        "default_1_vs_limit_1",
        "same_work_1_vs_peer_1",
        "same_work_2_vs_peer_2",
    }
    # The defaults' limit does the same-work limit's work and more: the held-out pass, the interpretation's
    # encode of the --interpret-tokens rows, the random control, the logit lens.
    (limit_default,) = report["runs"]["limit_default_1"]
    assert limit_default["interpret_tokens"] == 512
    assert limit_default["n_logit_lens_latents"][0] > 0
    assert limit_default["forward_held_out_s"] > 0
    parts = report["parts_median_s"]["limit_default_1"]
    assert {
        "read_s",
        "matmul_prompts_s",
        "matmul_interpret_s",
        "matmul_random_s",
        "matmul_logit_lens_s",
    } <= set(parts)
    assert parts["matmul_interpret_s"] > 0, parts
    # The peer is one script: its start, the model load and the prompts' forward pass in their order, then its
    # SAEs; not the passes the shared forward child also times for the limits (longest first, held-out).
    (forward,) = report["runs"]["forward_0"]
    (peer,) = report["runs"]["peer_1"]
    want = forward["seconds"] - forward["forward_held_out_s"] - forward["forward_sorted_s"] + peer["work_s"]
    assert abs(peer["seconds"] - want) < 5e-3, (peer, forward)  # each figure rounded to 1 ms
    # The limits run the model as pseval batches it (longest first): the floor of the pass, not the peer's.
    (limit,) = report["runs"]["limit_1"]
    want = forward["model_load_s"] + forward["forward_sorted_s"] + limit["work_s"]
    assert abs(limit["seconds"] - want) < 5e-3, (limit, forward)
    goals = {row["figure"]: row for row in report["goals"]}
    assert set(goals) == {
        "1 SAE, defaults",
        "+1 SAE of 2, same work",
        "1 SAE, same work",
        "2 SAEs, same work",
        "peak RSS, 2 vs 1 SAE",
    }
    defaults = goals["1 SAE, defaults"]
    assert defaults["reference"] == "limit_default"
    assert defaults["reference_value"] == report["seconds"]["limit_default_1"]["median"]
    assert defaults["ratio_median"] == report["ratios"]["default_1_vs_limit_default_1"]["median"]
    assert defaults["met"] == (defaults["ratio_median"] <= 2.0)
    # After the JSON, the same goals as a table that fits 80 columns.
    table = done.stdout.rstrip("\n").splitlines()[-len(goals) - 2 :]
    assert table[0].split() == ["figure", "pseval", "reference", "ratio", "goal", "met"], table
    assert all(len(line) <= 80 for line in table), table
    assert [line.split()[-1] for line in table[2:]] == [
        "yes" if row["met"] else "no" for row in report["goals"]
    ]
    assert report["peak_rss_ratio_many_vs_one"] > 0
    assert set(report["disk_read_mib_per_extra_sae"]) == {"pseval_same_work", "peer", "limit"}
    assert all(abs(l0 - 50) < 5 for l0 in report["calibrated_mean_l0"])
    assert set(report["default_eval_shares"]) == {
        "interpret_share_of_default_eval_1",
        "bootstrap_share_of_default_eval_1",
    }
