"""The SAE files a run has no stored result for are read (hash, NaN/Inf check) while the model loads."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import torch

import pseval.models.loading as loading_module
import pseval.sae.weights_check as weights_check_module
from pseval.errors import ModelError, SAEError
from pseval.evals.runner import evaluate, open_items, result_path
from pseval.sae.formats.loader import open_sae
from pseval.sae.lazy import all_finite
from pseval.sae.weights_check import ReadBuffers, finite_on_this_thread, hash_and_check
from tests.evals.test_check_weights_lazy import poison
from tests.evals.test_runner_identity import _config, write_sae


@pytest.fixture
def env(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path) -> dict[str, Any]:
    return {"model": str(tiny_model_dir), "dataset": str(tiny_dataset_file), "out": tmp_path / "results"}


def _reads_on_threads(
    monkeypatch: pytest.MonkeyPatch, loading: threading.Event, wait_s: float = 10.0
) -> list[tuple[str, bool]]:
    """Each SAE read's thread name and whether the model was loading when it ran; a read waits (up to
    ``wait_s``) for the load to start, so on a run that reads before the load it records False."""
    reads: list[tuple[str, bool]] = []
    real = weights_check_module.hash_and_check

    def read(*args: Any, **kwargs: Any) -> Any:
        reads.append((threading.current_thread().name, loading.wait(timeout=wait_s)))
        return real(*args, **kwargs)

    monkeypatch.setattr(weights_check_module, "hash_and_check", read)
    return reads


def _loading_sets(monkeypatch: pytest.MonkeyPatch, loading: threading.Event) -> None:
    real = loading_module.load_model

    def load(*args: Any, **kwargs: Any) -> Any:
        loading.set()
        return real(*args, **kwargs)

    monkeypatch.setattr(loading_module, "load_model", load)


def test_the_files_are_read_on_a_second_thread_while_the_model_loads(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    saes = [write_sae(tmp_path / f"sae{i}", seed=i) for i in range(2)]
    expected = [item.content_hash for item in open_items([str(s) for s in saes], read_decoder=False)]
    loading = threading.Event()
    reads = _reads_on_threads(monkeypatch, loading)
    _loading_sets(monkeypatch, loading)
    results = evaluate(env["model"], [str(s) for s in saes], config=_config(env), output_folder=env["out"])
    assert [name.startswith("pseval-read") for name, _ in reads] == [True, True]
    assert [during for _, during in reads] == [True, True]
    assert [r.sae_content_hash for r in results] == expected  # the same identity as a read on the main thread
    assert not [t for t in threading.enumerate() if t.name.startswith("pseval-read")]


def test_an_sae_with_a_stored_result_is_read_before_the_model(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sae = write_sae(tmp_path / "sae")
    evaluate(env["model"], [str(sae)], config=_config(env), output_folder=env["out"])
    loading = threading.Event()
    reads = _reads_on_threads(monkeypatch, loading, wait_s=0)

    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr(loading_module, "load_model", refuse)
    (kept,) = evaluate(env["model"], [str(sae)], config=_config(env), output_folder=env["out"])
    assert kept.result_checksum is not None
    assert reads == [("MainThread", False)]  # its identity decides whether it is finished: read first


def test_a_bad_tensor_read_while_the_model_loads_stops_the_run_before_any_pass(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = write_sae(tmp_path / "good", seed=1), write_sae(tmp_path / "bad", seed=2)
    poison(bad, "W_enc", (3, 5), float("nan"))

    def no_pass(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr("pseval.activations.collect.collect_activations", no_pass)
    with pytest.raises(SAEError, match=r"tensor W_enc holds non-finite values \(NaN\)"):
        evaluate(env["model"], [str(good), str(bad)], config=_config(env), output_folder=env["out"])
    assert not result_path(env["out"], "good").exists() and not result_path(env["out"], "bad").exists()


def test_a_model_that_fails_to_load_stops_the_reads(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    saes = [str(write_sae(tmp_path / f"sae{i}", seed=i)) for i in range(3)]
    started: list[str] = []
    real = weights_check_module.hash_and_check

    def read(source: Any, *args: Any, **kwargs: Any) -> Any:
        started.append(str(source.path))
        return real(source, *args, **kwargs)

    def fail(*_a: Any, **_k: Any) -> Any:
        raise ModelError("cannot load model folder 'x'", "pass a folder written by save_pretrained")

    monkeypatch.setattr(weights_check_module, "hash_and_check", read)
    monkeypatch.setattr(loading_module, "load_model", fail)
    with pytest.raises(ModelError, match="cannot load model folder"):
        evaluate(env["model"], saes, config=_config(env), output_folder=env["out"])
    assert not [t for t in threading.enumerate() if t.name.startswith("pseval-read")]
    assert len(started) <= len(saes)


def test_shared_read_buffers_give_the_same_hash_and_check(tmp_path: Path) -> None:
    folder = write_sae(tmp_path / "sae", seed=3)
    source = open_sae(str(folder))
    alone = hash_and_check(source, read_decoder=True)
    for piece in (64, 1 << 24):  # buffers smaller than a piece are not used; larger ones are
        again = hash_and_check(open_sae(str(folder)), True, own_threads=True, buffers=ReadBuffers(piece))
        assert (again.content_hash, again.decoder_hash) == (alone.content_hash, alone.decoder_hash)
    poison(folder, "b_dec", (4,), float("-inf"))
    read = hash_and_check(open_sae(str(folder)), True, own_threads=True, buffers=ReadBuffers())
    assert read.check is not None
    with pytest.raises(SAEError, match=r"tensor b_dec holds non-finite values \(Inf\)"):
        read.check()


DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]


@pytest.mark.parametrize("stored", DTYPES)
@pytest.mark.parametrize("dtype", DTYPES)
def test_the_check_on_this_thread_agrees_with_torch(stored: torch.dtype, dtype: torch.dtype) -> None:
    """``finite_on_this_thread`` is True only where torch's check of the cast values is, and decides every
    same-width or widening cast itself (NaN, ±Inf, subnormals, the largest finite values, float32 overflow)."""
    generator = torch.Generator().manual_seed(0)
    finfo = torch.finfo(stored)
    specials = [float("nan"), float("inf"), float("-inf"), finfo.max, -finfo.max, finfo.tiny / 2, -0.0]
    widening = dtype == stored or dtype.itemsize > stored.itemsize
    widening = widening and {stored, dtype} != {torch.float16, torch.bfloat16}
    for trial in range(60):
        values = (torch.randn(257, generator=generator) * 4).to(stored)
        if trial % 3:
            for position in torch.randint(0, 257, (trial % 4,), generator=generator).tolist():
                values[position] = specials[(trial + position) % len(specials)]
        elif trial % 2:
            values[:] = finfo.max  # finite, but a float32 sum of them overflows
        raw = values.view(torch.uint8)
        torch_says = all_finite(values.to(dtype))
        ours = finite_on_this_thread(raw, stored, dtype)
        if widening:
            assert ours == torch_says, (stored, dtype, trial)
        else:
            assert not ours or torch_says, (stored, dtype, trial)
