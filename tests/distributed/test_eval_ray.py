"""``pseval eval --executor ray``: the local executor's result files, one-line errors for cluster problems."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("ray")

from typer.testing import CliRunner

from pseval.cli import app
from tests.distributed.test_sweep_ray import _diff, _results
from tests.evals.conftest import make_sae


def _eval_args(model_dir: Path, dataset: Path, saes: list[Path], out: Path) -> list[str]:
    args = ["eval", "--model", str(model_dir), "--dataset", str(dataset), "--out", str(out)]
    # Ray's workers are other processes, out of reach of the test's switch of the site check: random
    # weights fit no site, so the check is turned off where the run is configured.
    args += ["--bootstrap", "200", "--interpret-tokens", "0", "--format", "json", "--no-site-check"]
    for sae in saes:
        args += ["--sae", str(sae)]
    return args


def test_ray_eval_gives_the_local_results_in_order_and_a_rerun_runs_no_task(
    ray_cluster: Any,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    tiny_model_dir: Path,
    tiny_dataset_file: Path,
) -> None:
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path / "cache"))
    saes = [
        make_sae(tmp_path / "saes" / "b-l2", "topk", "blocks.2.hook_resid_post", seed=1),
        make_sae(tmp_path / "saes" / "a-l0", "standard", "blocks.0.hook_resid_post", seed=2),
        make_sae(tmp_path / "saes" / "c-l0", "topk", "blocks.0.hook_resid_post", seed=3),
    ]
    runner = CliRunner()
    local = runner.invoke(app, _eval_args(tiny_model_dir, tiny_dataset_file, saes, tmp_path / "local"))
    assert local.exit_code == 0, local.output
    monkeypatch.setenv(
        "PSEVAL_CACHE", str(tmp_path / "cache-ray")
    )  # no activation read from the local run's cache
    args = _eval_args(tiny_model_dir, tiny_dataset_file, saes, tmp_path / "ray")
    args += ["--executor", "ray", "--ray-groups", "2"]
    distributed = runner.invoke(app, args)
    assert distributed.exit_code == 0, distributed.output
    assert "2 hook group(s)" in distributed.output and "ran on" in distributed.output
    differences = _diff(_results(tmp_path / "ray", "ps_eval"), _results(tmp_path / "local", "ps_eval"))
    assert not differences, "\n".join(differences[:20])
    assert len(_results(tmp_path / "ray", "ps_eval")) == 3
    # The printed results come in the order the SAEs were given, as with the local executor.
    names = ["b-l2", "a-l0", "c-l0"]
    assert [distributed.stdout.index(f'"{n}"') for n in names] == sorted(
        distributed.stdout.index(f'"{n}"') for n in names
    )

    again = runner.invoke(app, args)
    assert again.exit_code == 0, again.output
    assert again.output.count("skip ") == 3 and "hook group(s)" not in again.output
    # With --device auto the plan is made only once the cluster says which device: it still says what it skips.
    auto = runner.invoke(app, [*args, "--device", "auto"])
    assert auto.exit_code == 0, auto.output
    assert auto.output.count("skip ") == 3 and "hook group(s)" not in auto.output, auto.output


def test_cluster_problems_are_one_line_errors(
    ray_cluster: Any, tmp_path: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", "blocks.0.hook_resid_post")
    runner = CliRunner()
    base = _eval_args(tiny_model_dir, tiny_dataset_file, [sae], tmp_path / "out") + ["--executor", "ray"]
    cases = {
        "127.0.0.1:9": "no Ray cluster answers at --ray-address 127.0.0.1:9",
        "nowhere": "is not auto, local, HOST:PORT",
    }
    for address, message in cases.items():
        result = runner.invoke(app, [*base, "--ray-address", address])
        assert result.exit_code == 2 and message in result.output, result.output
        assert "Traceback" not in result.output
    no_gpu = runner.invoke(app, [*base, "--device", "cuda"])
    assert no_gpu.exit_code == 2 and "GPU" in no_gpu.output and "--device cpu" in no_gpu.output, no_gpu.output
    too_big = runner.invoke(app, [*base, "--ray-cpus-per-task", "64"])
    assert too_big.exit_code == 2 and "--ray-cpus-per-task 2" in too_big.output, too_big.output
    # A user error raised inside a task is the same one line as with the local executor.
    narrow = make_sae(tmp_path / "narrow", "topk", "blocks.0.hook_resid_post", d_in=16)
    args = _eval_args(tiny_model_dir, tiny_dataset_file, [narrow], tmp_path / "out") + ["--executor", "ray"]
    in_task = runner.invoke(app, args)
    assert in_task.exit_code == 2 and "expects d_in=16" in in_task.output, in_task.output
    assert "Traceback" not in in_task.output and in_task.output.count("error:") == 1


@pytest.mark.site_check
def test_a_bos_policy_the_sae_contradicts_stops_the_driver_before_the_cluster(
    tmp_path: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    from pseval.sae.config import config_from_dict
    from pseval.sae.formats import save_sae
    from pseval.sae.model import SAE

    fields = {
        "architecture": "topk",
        "d_in": 32,
        "d_sae": 64,
        "k": 4,
        "hook_name": "blocks.0.hook_resid_post",
    }
    cfg = config_from_dict({**fields, "model_name": "tiny-llama", "metadata": {"prepend_bos": True}})
    sae = save_sae(SAE.create_random(cfg, seed=0), tmp_path / "sae")
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(sae)]
    args += ["--out", str(tmp_path / "out"), "--executor", "ray", "--ray-address", "127.0.0.1:9"]
    result = CliRunner().invoke(app, [*args, "--device", "cpu", "--no-prepend-bos"])
    assert result.exit_code == 2 and "bos_mismatch" in result.output, result.output
    assert "no Ray cluster answers" not in result.output and "Traceback" not in result.output
