"""Small file helpers shared by every module: the cache folder and atomic writes.

Everything pseval writes goes to a temporary file in the destination folder first and is then renamed
into place, so an interrupted run never leaves a half-written file behind and never damages a file
written before. Temporary files are created private (``tempfile`` uses 0600 and 0700); before the rename
they get the mode a plain ``open()`` or ``mkdir`` would give (0644 and 0755 under umask 022), so
collaborators on a shared server can read results as the user's umask allows.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def cache_dir() -> Path:
    """The pseval cache folder: ``$PSEVAL_CACHE`` or ``~/.cache/pseval``."""
    root = os.environ.get("PSEVAL_CACHE")
    path = Path(root).expanduser() if root else Path.home() / ".cache" / "pseval"
    path.mkdir(parents=True, exist_ok=True)
    return path


_UMASK_LOCK = threading.Lock()


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (``/proc/self/status`` on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    # os.umask can only be read by setting it; the lock keeps our own threads from racing on it.
    with _UMASK_LOCK:
        mask = os.umask(0o077)
        os.umask(mask)
    return mask


def _apply_umask(path: Path, base_mode: int) -> None:
    """Give ``path`` the mode ``base_mode & ~umask`` (what ``open``/``mkdir`` would have given it)."""
    os.chmod(path, base_mode & ~current_umask())


def _apply_umask_tree(root: Path) -> None:
    """Folders 0777 and files 0666 (0777 if executable by the owner), less the umask, under ``root``.

    Writers inside an atomic folder may create private files themselves (safetensors' ``save_file``
    writes 0600 files whatever the umask), so the whole tree is set before it is swapped into place.
    """
    mask = current_umask()
    os.chmod(root, 0o777 & ~mask)
    for folder, dirnames, filenames in os.walk(root):
        for name in dirnames:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                os.chmod(path, 0o777 & ~mask)
        for name in filenames:
            path = os.path.join(folder, name)
            if not os.path.islink(path):
                executable = os.stat(path).st_mode & 0o100
                os.chmod(path, (0o777 if executable else 0o666) & ~mask)


def _temp_prefix(dest: Path) -> str:
    """``.<name>.`` for the temporary twin of ``dest``, its name cut to 100 bytes: a destination whose name
    is near the 255-byte file-name limit must not fail because its temporary name is 14 bytes longer."""
    name = dest.name.encode("utf-8")[:100].decode("utf-8", errors="ignore")
    return f".{name}."


@contextlib.contextmanager
def atomic_path(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``destination``; rename it into place when the block succeeds."""
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=_temp_prefix(dest), suffix=".tmp", dir=dest.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        if tmp.exists():
            _apply_umask(tmp, 0o666)
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextlib.contextmanager
def atomic_dir(destination: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary folder beside ``destination``; swap it into place when the block succeeds.

    An existing folder at ``destination`` is only removed after the new one is complete.
    """
    dest = Path(destination)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(dest), suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        _apply_umask_tree(tmp)
        if dest.exists():
            old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
            os.replace(dest, old)
            os.replace(tmp, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, dest)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def check_writable(path: str | os.PathLike[str], option: str = "--out", kind: str = "folder") -> Path:
    """Fail early, with the option to fix, when ``path`` cannot be written as a ``kind`` ("folder"/"file").

    Called before any long work starts, so an unusable output path costs seconds, not a whole run. The
    path need not exist yet: its nearest existing folder must take a new file. That is tried for real (a
    private file created and removed), because permission bits do not tell: root passes every access check,
    and ``/proc``, ``/sys`` or a read-only mount refuse files whatever the bits say.
    """
    from pseval.errors import ConfigError

    target = Path(path).expanduser()
    fix = f"pass {option} a {kind} path you can write to"
    if kind == "folder" and target.exists() and not target.is_dir():
        raise ConfigError(f"{option} {target} is a file, not a folder", fix)
    if kind == "file" and target.is_dir():
        raise ConfigError(f"{option} {target} is a folder, not a file", fix)
    probe = target if kind == "folder" else target.parent
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(f"{option} {target} is inside {probe}, which is a file, not a folder", fix)
    if target.is_file() and not os.access(target, os.W_OK):
        raise ConfigError(f"{option} {target} is not writable (no write permission on it)", fix)
    refusal = _write_probe(probe)
    if refusal is not None:
        raise ConfigError(f"{option} {target} is not writable ({probe} refuses new files: {refusal})", fix)
    return target


def _write_probe(folder: Path) -> str | None:
    """``None`` when a file can be created in (and removed from) ``folder``, else why not."""
    try:
        fd, name = tempfile.mkstemp(prefix=".pseval-write-probe-", dir=folder)
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    os.close(fd)
    try:
        os.unlink(name)
    except OSError as exc:
        return f"a new file could not be removed: {exc.strerror or type(exc).__name__}"
    return None


def write_text_atomic(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` atomically and return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json_atomic(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> Path:
    """Serialise ``obj`` as JSON and write it atomically."""
    return write_text_atomic(path, json.dumps(obj, indent=indent, default=_json_default) + "\n")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def stable_hash(*parts: Any, length: int = 16) -> str:
    """A short, stable hex digest of JSON-serialisable parts (used for cache keys)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(json.dumps(part, sort_keys=True, default=_json_default).encode())
        digest.update(b"\x00")
    return digest.hexdigest()[:length]


def read_mapping_file(path: str | Path, what: str) -> dict[str, Any]:
    """The mapping a YAML (``.yaml``/``.yml``) or JSON file holds; a ConfigError naming ``path`` otherwise.

    ``what`` says what the file is for in the messages (``"eval config"``).
    """
    from pseval.errors import ConfigError, parse_error_details

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{what} file {path} does not exist", "check the path")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:
        raise ConfigError(
            f"cannot parse {what} file {path} ({parse_error_details(exc)})", "fix its syntax"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{what} file {path} does not hold a mapping", "write field: value pairs")
    return data
