"""Each SAE's files are read once before the model pass: the content hash and the NaN/Inf check share a read."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path
from typing import Any

import pytest
import torch

import pseval.sae.source as source_module
import pseval.sae.weights_check as weights_check_module
from pseval.errors import SAEError
from pseval.evals.runner import _check_weights, open_items
from pseval.sae.formats._common import safetensors_header
from pseval.sae.formats.loader import open_sae
from pseval.sae.lazy import SafetensorsBlocks, feature_blocks
from pseval.sae.weights_check import check_finite_tensors, decoder_rows_hash
from tests.evals.test_check_weights_lazy import item_of, poison, refuse_load, saved


def _count_reads(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[int]:
    read: list[int] = []
    real = module.read_byte_ranges

    def counting(path: Path, pieces: list[tuple[int, int]], out: Any = None) -> torch.Tensor:
        read.extend(n for _, n in pieces)
        return real(path, pieces, out)

    monkeypatch.setattr(module, "read_byte_ranges", counting)
    return read


def _decoder_bytes(source: Any) -> int:
    ranges = weights_check_module.decoder_ranges(source).values()
    return sum(end - begin for found in ranges for begin, end in found)


@pytest.mark.parametrize("piece_bytes", [8, 1 << 24])
def test_one_read_of_what_scoring_reads_gives_the_content_hash_and_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    folder = saved(tmp_path / "sae")
    source = open_sae(folder)
    apart = weights_check_module.decoder_ranges(source)
    assert _decoder_bytes(source) == 40 * 16 * 4  # W_dec [d_sae, d_in] float32: the one tensor left apart
    monkeypatch.setattr(weights_check_module, "PIECE_BYTES", piece_bytes)
    read = _count_reads(monkeypatch, weights_check_module)
    check = weights_check_module.StreamedCheck(source, piece_bytes)
    streamed = source.content_hash(read_chunks=check.chunks, apart=apart)
    assert streamed == source.content_hash(apart=apart)
    assert streamed != source.content_hash()  # identity version 1 hashed the decoder's bytes too
    assert sum(read) == sum(p.stat().st_size for p in set(source.files)) - _decoder_bytes(source)
    check.raise_if_bad()
    assert source.checked_tensors == {"W_enc", "b_enc", "b_dec", "threshold"} and not source.weights_checked
    item = open_items([str(folder)], read_decoder=False)[0]
    assert item.content_hash == streamed and item.weights_check is not None and item.decoder_hash is None
    monkeypatch.setattr(weights_check_module, "check_finite_tensors", _refused)
    refuse_load(monkeypatch)
    _check_weights(item, read_decoder=False)  # the check done during the hash: no second read
    block = SafetensorsBlocks(item.source)
    monkeypatch.setattr("pseval.sae.lazy.all_finite", _refused)  # what the hash checked is not checked again
    list(feature_blocks(block, torch.randn(4, source.cfg.d_in)))
    with pytest.raises(AssertionError, match="read a second time"):  # the decoder rows are checked as read
        block.latent_rows("W_dec", [3])


def test_a_run_whose_metrics_read_the_whole_decoder_reads_it_in_the_same_stream(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = saved(tmp_path / "sae")
    read = _count_reads(monkeypatch, weights_check_module)
    item = open_items([str(folder)], read_decoder=True)[0]
    assert sum(read) == sum(p.stat().st_size for p in set(item.source.files))  # every byte, once
    assert item.content_hash == open_items([str(folder)], read_decoder=False)[0].content_hash
    assert item.decoder_hash is not None
    monkeypatch.setattr(weights_check_module, "check_finite_tensors", _refused)
    refuse_load(monkeypatch)
    _check_weights(item, read_decoder=True)
    assert item.weights_checked  # a load (the site check's) skips its own pass


@pytest.mark.parametrize("read_decoder", [True, False])
def test_a_bad_decoder_fails_before_the_model_when_a_metric_reads_it_whole(
    tmp_path: Path, read_decoder: bool
) -> None:
    folder = saved(tmp_path / "sae")
    poison(folder, "W_dec", (7, 3), float("-inf"))
    item = open_items([str(folder)], read_decoder=read_decoder)[0]
    if read_decoder:
        with pytest.raises(SAEError, match="tensor W_dec holds non-finite values"):
            _check_weights(item, read_decoder=True)
        return
    _check_weights(item, read_decoder=False)  # scoring reads only the chosen latents' rows
    SafetensorsBlocks(item.source).latent_rows("W_dec", [6, 8])  # finite rows pass
    with pytest.raises(SAEError, match="W_dec contains NaN or Inf"):  # a bad row fails as it is read
        SafetensorsBlocks(item.source).latent_rows("W_dec", [7])
    with pytest.raises(SAEError, match="tensor W_dec holds non-finite values"):  # and so does a load
        item.load("cpu", None)


def test_the_identity_is_of_the_bytes_and_reproducible(tmp_path: Path) -> None:
    """An exact copy has the identity whatever its mtime; a changed encoder byte changes it; a changed decoder
    byte changes the decoder hash (when read whole) and the rows hash of the latents whose rows changed."""
    folder = saved(tmp_path / "sae")
    first = open_items([str(folder)], read_decoder=True)[0]
    copy = tmp_path / "copy" / "sae"
    shutil.copytree(folder, copy)
    os.utime(copy / "sae_weights.safetensors", ns=(0, 0))
    again = open_items([str(copy)], read_decoder=True)[0]
    assert (again.content_hash, again.decoder_hash) == (first.content_hash, first.decoder_hash)
    rows_before = {i: decoder_rows_hash(SafetensorsBlocks(again.source), [i]) for i in (0, 1)}
    _overwrite_first_value(copy / "sae_weights.safetensors", "W_dec")  # row 0 of the decoder
    changed = open_items([str(copy)], read_decoder=True)[0]
    assert changed.content_hash == first.content_hash and changed.decoder_hash != first.decoder_hash
    rows_after = {i: decoder_rows_hash(SafetensorsBlocks(changed.source), [i]) for i in (0, 1)}
    assert rows_after[0] != rows_before[0] and rows_after[1] == rows_before[1]
    _overwrite_first_value(copy / "sae_weights.safetensors", "W_enc")
    assert open_items([str(copy)], read_decoder=True)[0].content_hash != first.content_hash


def _overwrite_first_value(path: Path, key: str) -> None:
    """Write 0.5 over the first float32 value of tensor ``key`` in place (the header unchanged)."""
    entries, data_start = safetensors_header(path)
    with path.open("r+b") as fh:
        fh.seek(data_start + entries[key].begin)  # type: ignore[attr-defined]
        fh.write(struct.pack("<f", 0.5))


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
    assert weights_check_module.hash_and_check(source).check is None  # identified by headers, sizes, mtimes
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


def test_a_checked_encoder_is_encoded_where_the_page_cache_holds_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once the streamed check read ``W_enc``, scoring maps it instead of copying it out slab by slab: none of
    its bytes read again, and codes bit for bit those of the read path, block for block."""
    import pseval.sae.lazy as lazy_module

    item = open_items([str(saved(tmp_path / "sae"))])[0]
    acts = torch.randn(6, item.source.cfg.d_in)
    read_path = list(feature_blocks(SafetensorsBlocks(item.source), acts, block_size=16))  # copied slabs
    _check_weights(item)
    read = _count_reads(monkeypatch, lazy_module)
    mapped = SafetensorsBlocks(item.source)
    read.clear()  # the per-latent vectors, read when the blocks are opened
    got = list(feature_blocks(mapped, acts, block_size=16))  # several blocks: strided views of the map
    assert len(got) > 1 and read == []
    assert all(a == c and torch.equal(b, d) for (a, b), (c, d) in zip(read_path, got, strict=True))
    assert mapped._slabs["W_enc"][:2] == (0, item.source.cfg.d_sae)  # one view of the whole matrix
