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
        "pseval_same_work_2",
        "peer_2",
    ):
        assert report["seconds"][side]["min"] > 0, side
    assert set(report["ratios"]) >= {"default_1_vs_limit_1", "same_work_1_vs_peer_1", "same_work_2_vs_peer_2"}
    assert report["peak_rss_ratio_many_vs_one"] > 0
    assert all(abs(l0 - 50) < 5 for l0 in report["calibrated_mean_l0"])
    assert set(report["default_eval_shares"]) == {
        "interpret_share_of_default_eval_1",
        "bootstrap_share_of_default_eval_1",
    }
