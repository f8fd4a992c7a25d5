"""The command line has glibc keep freed scoring buffers for reuse, unless the user set the allocator."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from pseval.sae.allocator import keep_large_buffers

GLIBC = sys.platform.startswith("linux") and platform.libc_ver()[0] == "glibc"


@pytest.mark.skipif(not GLIBC, reason="a glibc setting")
def test_glibc_takes_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_TOP_PAD_", "GLIBC_TUNABLES"):
        monkeypatch.delenv(name, raising=False)
    assert keep_large_buffers() is True


@pytest.mark.parametrize("name", ["MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"])
def test_the_users_own_setting_stands(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    monkeypatch.setenv(name, "1048576")
    assert keep_large_buffers() is False


def test_pseval_eval_sets_it_before_scoring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Only ``pseval eval`` sets it (training and the other commands keep glibc's defaults), before any SAE."""
    import pseval.cli.eval_command as eval_command
    from pseval.cli import app

    calls: list[str] = []
    monkeypatch.setattr(eval_command, "keep_large_buffers", lambda: calls.append("keep") or True)

    def scored(*_args: object) -> tuple[list[object], set[str]]:
        calls.append("scored")
        return [], set()

    monkeypatch.setattr(eval_command, "_evaluate", scored)
    result = CliRunner().invoke(app, ["eval", "--sae", str(tmp_path / "sae"), "--out", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert calls == ["keep", "scored"]
