"""The command line has glibc keep freed scoring buffers for reuse, unless the user set the allocator."""

from __future__ import annotations

import platform
import sys

import pytest

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


def test_the_command_line_sets_it(monkeypatch: pytest.MonkeyPatch) -> None:
    import pseval.cli as cli

    calls: list[bool] = []
    monkeypatch.setattr(cli, "keep_large_buffers", lambda: calls.append(True) or True)
    monkeypatch.setattr(sys, "argv", ["pseval", "--help"])
    with pytest.raises(SystemExit):
        cli.main()
    assert calls == [True]
