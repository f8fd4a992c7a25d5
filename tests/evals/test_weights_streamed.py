"""Each SAE's files are read once before the model pass: the content hash and the NaN/Inf check share a read."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

import pseval.sae.source as source_module
import pseval.sae.weights_check as weights_check_module
from pseval.errors import SAEError
from pseval.evals.runner import _check_weights, open_items
from pseval.sae.formats.loader import open_sae
from pseval.sae.lazy import SafetensorsBlocks, check_finite_tensors, feature_blocks
from tests.evals.test_check_weights_lazy import item_of, poison, refuse_load, saved


def _count_reads(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    read: list[int] = []
    real = module.read_byte_ranges

    def counting(path: Path, pieces: list[tuple[int, int]], out: Any = None) -> torch.Tensor:
        read.extend(n for _, n in pieces)
        return real(path, pieces, out)

    monkeypatch.setattr(module, "read_byte_ranges", counting)
    return read


@pytest.mark.parametrize("piece_bytes", [8, 1 << 24])
def test_one_read_gives_the_content_hash_and_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    folder = saved(tmp_path / "sae")
    source = open_sae(folder)
    monkeypatch.setattr(weights_check_module, "PIECE_BYTES", piece_bytes)
    read = _count_reads(monkeypatch, weights_check_module)
    check = weights_check_module.StreamedCheck(source, piece_bytes)
    streamed = source.content_hash(read_chunks=check.chunks)
    assert streamed == source.content_hash()  # the identity of stored results is unchanged
    assert sum(read) == sum(p.stat().st_size for p in set(source.files))  # every byte once
    check.raise_if_bad()
    item = open_items([str(folder)])[0]
    assert item.content_hash == source.content_hash() and item.weights_check is not None
    monkeypatch.setattr(weights_check_module, "check_finite_tensors", _refused)
    refuse_load(monkeypatch)
    _check_weights(item)  # the check done during the hash: no second read


def _refused(*_args: Any, **_kwargs: Any) -> None:
    raise AssertionError("the weights were read a second time")


@pytest.mark.parametrize(
    ("key", "index", "value"),
    [("W_enc", (15, 39), float("nan")), ("W_dec", (7, 3), float("-inf")), ("threshold", (11,), float("nan"))],
)
def test_the_streamed_check_fails_before_the_model_with_the_load_message(
    tmp_path: Path, key: str, index: tuple[int, ...], value: float
) -> None:
    folder = saved(tmp_path / "sae")
    poison(folder, key, index, value)
    with pytest.raises(SAEError) as whole:
        check_finite_tensors(open_sae(folder))
    item = open_items([str(folder)])[0]  # opening never raises: a finished result may still be kept
    with pytest.raises(SAEError) as streamed:
        _check_weights(item)
    assert str(streamed.value) == str(whole.value) and f"tensor {key}" in str(streamed.value)


def test_a_huge_sae_checks_its_vectors_first_and_its_matrices_as_they_are_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(source_module, "FULL_HASH_LIMIT_BYTES", 0)  # every file counts as huge
    folder = saved(tmp_path / "sae")
    poison(folder, "W_dec", (7, 3), float("inf"))
    source = open_sae(folder)
    assert weights_check_module.hash_and_check(source)[1] is None  # identified by headers, sizes, mtimes
    refuse_load(monkeypatch)
    _check_weights(item_of(source))  # the decoder is not read before the model pass
    poison(folder, "b_enc", (3,), float("nan"))
    with pytest.raises(SAEError, match="tensor b_enc holds non-finite values"):
        _check_weights(item_of(open_sae(folder)))
    folder = saved(tmp_path / "sae2")
    poison(folder, "W_enc", (0, 0), float("nan"))
    source = open_sae(folder)
    _check_weights(item_of(source))  # a matrix of a huge SAE is checked as scoring streams it
    with pytest.raises(SAEError, match="W_enc contains NaN or Inf"):
        list(feature_blocks(SafetensorsBlocks(source), torch.randn(4, source.cfg.d_in)))


def test_a_run_keeps_no_read_buffer_per_sae(tmp_path: Path) -> None:
    """The check a run keeps for each SAE until it is scored holds its verdict, not the buffer it read with."""
    source = open_sae(saved(tmp_path / "sae"))
    check = weights_check_module.StreamedCheck(source)
    source.content_hash(read_chunks=check.chunks)
    held = [v for v in vars(check).values() if isinstance(v, torch.Tensor)]
    assert held == []


def test_block_reads_of_a_checked_sae_are_not_checked_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the streamed check passed, scoring's block reads at the same dtype skip their finite pass."""
    import pseval.sae.lazy as lazy_module

    item = open_items([str(saved(tmp_path / "sae"))])[0]
    acts = torch.randn(4, item.source.cfg.d_in)
    want = list(feature_blocks(SafetensorsBlocks(item.source), acts))
    _check_weights(item)
    assert item.source.weights_checked
    monkeypatch.setattr(lazy_module, "all_finite", _refused)
    got = list(feature_blocks(SafetensorsBlocks(item.source), acts))
    assert all(a == c and torch.equal(b, d) for (a, b), (c, d) in zip(want, got, strict=True))
    with pytest.raises(AssertionError, match="read a second time"):  # another dtype is checked again
        list(feature_blocks(SafetensorsBlocks(item.source, "float64"), acts))
