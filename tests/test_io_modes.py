"""Atomic writes: files and folders get the mode the umask gives (not the private temporary-file mode)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from pseval._io import atomic_dir, atomic_path, current_umask, write_json_atomic, write_text_atomic

pytestmark = pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")


@pytest.fixture
def umask() -> Iterator[object]:
    """Run a test under a chosen umask and restore the previous one afterwards."""
    previous = os.umask(0o022)
    os.umask(previous)

    class _Set:
        def __call__(self, mask: int) -> None:
            os.umask(mask)

    yield _Set()
    os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.parametrize(("mask", "file_mode", "dir_mode"), [(0o022, 0o644, 0o755), (0o027, 0o640, 0o750)])
def test_written_files_and_folders_follow_the_umask(
    umask: object, tmp_path: Path, mask: int, file_mode: int, dir_mode: int
) -> None:
    umask(mask)  # type: ignore[operator]
    assert current_umask() == mask
    assert _mode(write_text_atomic(tmp_path / "a.txt", "x")) == file_mode
    assert _mode(write_json_atomic(tmp_path / "sub" / "b.json", {"x": 1})) == file_mode
    with atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"\x00")
    assert _mode(tmp_path / "c.bin") == file_mode
    with atomic_dir(tmp_path / "folder") as tmp:
        write_text_atomic(tmp / "inside.txt", "y")
        (tmp / "deeper").mkdir()
        private = tmp / "deeper" / "private.bin"
        private.write_bytes(b"")
        private.chmod(0o600)  # as safetensors' save_file writes its files
    assert _mode(tmp_path / "folder") == dir_mode
    assert _mode(tmp_path / "folder" / "inside.txt") == file_mode
    assert _mode(tmp_path / "folder" / "deeper") == dir_mode
    assert _mode(tmp_path / "folder" / "deeper" / "private.bin") == file_mode
    # a plain open() under the same umask gives the same mode
    plain = tmp_path / "plain.txt"
    plain.write_text("z")
    assert _mode(plain) == file_mode


def test_rewriting_a_private_file_gives_the_umask_mode(umask: object, tmp_path: Path) -> None:
    umask(0o022)  # type: ignore[operator]
    target = tmp_path / "result.json"
    target.write_text("{}")
    target.chmod(0o600)  # as an older pseval wrote it
    write_json_atomic(target, {"x": 2})
    assert _mode(target) == 0o644


def test_umask_is_left_unchanged(umask: object, tmp_path: Path) -> None:
    umask(0o027)  # type: ignore[operator]
    write_text_atomic(tmp_path / "a.txt", "x")
    assert current_umask() == 0o027
    previous = os.umask(0o022)
    assert previous == 0o027


def test_sae_written_by_the_trainer_follows_the_umask(umask: object, tmp_path: Path) -> None:
    """``write_output`` moves files out of a private temporary folder; they keep the umask mode."""
    from pseval.sae.config import config_from_dict
    from pseval.sae.model import SAE
    from pseval.training.trainer import write_output

    pytest.importorskip("safetensors")
    umask(0o022)  # type: ignore[operator]
    cfg = config_from_dict({"architecture": "standard", "d_in": 4, "d_sae": 8})
    sae = SAE.create_random(cfg, seed=0)
    out = write_output(sae, tmp_path / "sae")
    files = [p for p in out.iterdir() if p.is_file()]
    assert files
    assert {p.name: _mode(p) for p in files} == {p.name: 0o644 for p in files}


def test_activation_cache_file_follows_the_umask(umask: object, tmp_path: Path) -> None:
    """safetensors writes 0600 files; through atomic_path the cache file still gets the umask mode."""
    import torch
    from safetensors.torch import save_file

    umask(0o022)  # type: ignore[operator]
    with atomic_path(tmp_path / "acts.safetensors") as tmp:
        save_file({"acts": torch.zeros(2, 3)}, str(tmp))
    assert _mode(tmp_path / "acts.safetensors") == 0o644
