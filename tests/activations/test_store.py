"""The activation store: shuffling buffer bounds, special positions, the disk cache and multi-hook harvests."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.activations.store import ActivationStore, ShuffleBuffer, StoreConfig
from pseval.data.corpus import ContextBatch, pack_tokens, special_token_mask
from pseval.errors import ConfigError, DataError
from pseval.models.hooks import run_with_cache
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded, write_word_corpus

WORDS = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
HOOK = "blocks.1.hook_resid_post"
HOOK_EARLY = "blocks.0.hook_resid_pre"


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama", n_layers=3, d_model=32)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_word_corpus(tmp_path_factory.mktemp("corpus") / "docs.txt", n_docs=1500)


def make_store(loaded: Any, corpus_file: str, tmp_path: Path, **overrides: Any) -> ActivationStore:
    settings: dict[str, Any] = {
        "corpus": corpus_file,
        "context_size": 16,
        "model_batch_size": 4,
        "buffer_tokens": 256,
        "cache_root": tmp_path / "acts",
        "cache_dtype": "float32",
    }
    settings.update(overrides)
    return ActivationStore(loaded, **settings)


def sort_rows(rows_ND: torch.Tensor) -> torch.Tensor:
    """Rows in a canonical order (lexicographic on the first columns), to compare multisets of rows."""
    order = torch.argsort(rows_ND[:, 0] * 1e6 + rows_ND[:, 1] * 1e3 + rows_ND[:, 2])
    return rows_ND[order]


# ------------------------------------------------------------------------------------------------ buffer


def id_chunks(n: int, chunk: int, d: int = 3) -> list[torch.Tensor]:
    ids = torch.arange(n, dtype=torch.float32)
    return [ids[i : i + chunk, None].repeat(1, d) for i in range(0, n, chunk)]


def test_shuffle_buffer_hands_out_every_row_once_in_bounded_memory() -> None:
    buffer = ShuffleBuffer(capacity=64, seed=1)
    seen: list[torch.Tensor] = []
    for batch in buffer.batches(iter(id_chunks(1000, 24)), batch_size=10):
        assert buffer.buffer is not None and buffer.buffer.shape == (64, 3)
        seen.append(batch)
    assert buffer.buffer is None  # released once done
    assert buffer.peak_rows == 64 and buffer.max_chunk_rows == 24
    assert all(b.shape == (10, 3) for b in seen)  # 1000 rows = 100 full batches
    ids = torch.cat(seen)[:, 0]
    assert sorted(ids.tolist()) == list(range(1000))
    assert not torch.equal(ids, torch.arange(1000, dtype=torch.float32))  # actually shuffled
    # bounded look-ahead: the first batch only holds rows that fitted in the buffer
    assert seen[0][:, 0].max() < 64


def test_shuffle_buffer_is_seeded_and_keeps_the_last_partial_batch() -> None:
    def run(seed: int, drop_last: bool = False) -> list[torch.Tensor]:
        return list(ShuffleBuffer(32, seed=seed).batches(iter(id_chunks(105, 7)), 8, drop_last=drop_last))

    first, again, other = run(0), run(0), run(1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(first, other, strict=True))
    assert [b.shape[0] for b in first] == [8] * 13 + [1]
    assert [b.shape[0] for b in run(0, drop_last=True)] == [8] * 13
    small = list(ShuffleBuffer(32, seed=0).batches(iter(id_chunks(5, 7)), 4))  # fewer rows than the buffer
    assert sorted(torch.cat(small)[:, 0].tolist()) == [0, 1, 2, 3, 4]


def test_shuffle_buffer_rejects_a_buffer_smaller_than_two_batches() -> None:
    with pytest.raises(ConfigError, match="buffer_tokens"):
        list(ShuffleBuffer(16, seed=0).batches(iter(id_chunks(100, 10)), 10))


# ------------------------------------------------------------------------------------------------ store


def test_activations_skip_special_positions(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    store = make_store(loaded, corpus_file, tmp_path, cache=False)
    first = next(store.iter_activations([HOOK], n_tokens=None))[HOOK]
    contexts = list(pack_tokens(loaded.tokenizer, _texts(corpus_file), 16))[:4]
    ids = torch.stack(contexts)
    keep = ~special_token_mask(ids, loaded.tokenizer)
    assert first.shape == (int(keep.sum()), 32)
    expected = run_with_cache(loaded.model, ids, torch.ones_like(ids), [HOOK])[HOOK][keep]
    assert torch.allclose(first, expected)


def _texts(corpus_file: str) -> Any:
    from pseval.data.corpus import iter_texts

    return iter_texts(corpus_file, "train")


def test_batches_without_cache_are_a_shuffle_of_the_activations(
    loaded: Any, corpus_file: str, tmp_path: Path
) -> None:
    store = make_store(loaded, corpus_file, tmp_path, cache=False)
    batches = list(store.batches(HOOK, batch_size=32, n_tokens=1000))
    assert [b.shape for b in batches] == [(32, 32)] * 31 + [(8, 32)]
    assert all(b.dtype == torch.float32 for b in batches)
    assert store.last_buffer is not None and store.last_buffer.peak_rows <= store.config.buffer_tokens
    assert store.last_buffer.max_chunk_rows <= store.config.model_batch_size * store.config.context_size
    ordered = torch.cat([r[HOOK] for r in store.iter_activations([HOOK], 1000)])
    assert torch.allclose(sort_rows(torch.cat(batches)), sort_rows(ordered))
    assert not (tmp_path / "acts").exists()  # nothing written with the cache off


def test_cache_means_no_forward_pass_on_a_second_run(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    first_store = make_store(loaded, corpus_file, tmp_path, cache_dtype="float16")
    first = list(first_store.batches(HOOK, 64, 1500))
    assert first_store.n_forward_passes > 0
    folders = list((tmp_path / "acts").iterdir())
    assert len(folders) == 1 and folders[0].name.endswith("-1500")
    manifest = json.loads((folders[0] / "manifest.json").read_text())
    assert manifest["n_tokens"] == 1500 and manifest["hook_name"] == HOOK and manifest["dtype"] == "float16"
    assert sum(s["n_rows"] for s in manifest["shards"]) == 1500

    second_store = make_store(loaded, corpus_file, tmp_path, cache_dtype="float16")
    second = list(second_store.batches(HOOK, 64, 1500))
    assert second_store.n_forward_passes == 0
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))

    # a shorter run reuses the longer cache; another hook or dtype does not
    shorter = make_store(loaded, corpus_file, tmp_path, cache_dtype="float16")
    assert sum(b.shape[0] for b in shorter.batches(HOOK, 64, 700)) == 700
    assert shorter.n_forward_passes == 0
    other = make_store(loaded, corpus_file, tmp_path, cache_dtype="float32")
    list(other.batches(HOOK, 64, 200))
    assert other.n_forward_passes > 0


def test_cached_rows_equal_fresh_rows(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    store = make_store(loaded, corpus_file, tmp_path)
    folder = store.harvest(HOOK, 300)[HOOK]
    cached = torch.cat(list(store._iter_cached(folder, 300, 50)))
    fresh = torch.cat([r[HOOK] for r in store.iter_activations([HOOK], 300)])
    assert torch.equal(cached, fresh)


def test_harvest_fills_several_hooks_from_one_pass(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    single = make_store(loaded, corpus_file, tmp_path / "single")
    single.harvest([HOOK], 600)
    both = make_store(loaded, corpus_file, tmp_path / "both")
    folders = both.harvest([HOOK, HOOK_EARLY], 600)
    assert set(folders) == {HOOK, HOOK_EARLY}
    assert both.n_forward_passes == single.n_forward_passes  # one forward pass per batch for both hooks
    passes = both.n_forward_passes
    for hook in (HOOK, HOOK_EARLY):
        assert sum(b.shape[0] for b in both.batches(hook, 100, 600)) == 600
    assert both.n_forward_passes == passes


def test_a_corpus_too_short_raises_and_leaves_no_cache(loaded: Any, tmp_path: Path) -> None:
    short = tmp_path / "short.txt"
    short.write_text("\n".join(f"the {w} sat on a chair" for w in WORDS) + "\n")
    store = make_store(loaded, str(short), tmp_path)
    with pytest.raises(DataError, match="fewer than"):
        store.harvest(HOOK, 10_000)
    assert store.n_forward_passes == 0, "a corpus too short is found before any model pass"
    root = tmp_path / "acts"
    assert not root.exists() or not [p for p in root.iterdir() if not p.name.startswith(".")]
    assert store.find_cache(HOOK, 1) is None


def test_holdout_batches_and_activations(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    store = make_store(loaded, corpus_file, tmp_path)
    batches = list(store.holdout_batches(batch_size=2, n_tokens=40))
    assert batches and all(isinstance(b, ContextBatch) for b in batches)
    assert sum(int(b.token_mask.sum()) for b in batches) >= 40
    acts = torch.cat(list(store.holdout_activations(HOOK, 40)))
    assert acts.shape == (40, 32)
    train = torch.cat([r[HOOK] for r in store.iter_activations([HOOK], 40)])
    assert not torch.allclose(acts, train)


def test_invalid_settings_are_config_errors(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="buffer_tokens"):
        make_store(loaded, corpus_file, tmp_path, buffer_tokens=0)
    store = make_store(loaded, corpus_file, tmp_path, cache=False)
    with pytest.raises(ConfigError, match="cache"):
        store.harvest(HOOK, 10)
    assert StoreConfig().cache_dtype == "float16"


def test_a_harvest_that_cannot_fit_on_disk_fails_before_any_forward_pass(
    loaded: Any, corpus_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = make_store(loaded, corpus_file, tmp_path)
    needed = store.harvest_bytes([HOOK, HOOK_EARLY], 600)
    assert needed == 2 * 600 * 32 * 4  # two hooks of width 32, float32
    free = shutil.disk_usage(tmp_path)._replace(free=needed - 1)
    monkeypatch.setattr("pseval.activations.store.shutil.disk_usage", lambda _p: free)
    with pytest.raises(DataError, match=r"needs 0\.0 GB .* --cache-dtype float16"):
        store.harvest([HOOK, HOOK_EARLY], 600)
    assert store.n_forward_passes == 0
    # A sweep harvests such hooks in groups that fit; a hook that fits on its own in no group is refused.
    assert store.plan_harvest([HOOK, HOOK_EARLY], 600) == [[HOOK], [HOOK_EARLY]]
    monkeypatch.setattr("pseval.activations.store.shutil.disk_usage", lambda _p: free._replace(free=10))
    with pytest.raises(DataError, match="needs"):
        store.plan_harvest([HOOK], 600)
    monkeypatch.setattr("pseval.activations.store.shutil.disk_usage", lambda _p: free._replace(free=needed))
    store.harvest([HOOK, HOOK_EARLY], 600)
    assert store.n_forward_passes > 0


def test_the_corpus_check_tokenises_once_for_the_harvest_that_follows(
    loaded: Any, corpus_file: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = torch.cat(
        [
            rows[HOOK]
            for rows in make_store(loaded, corpus_file, tmp_path, cache=False).iter_activations([HOOK], 600)
        ]
    )
    store = make_store(loaded, corpus_file, tmp_path)
    calls: list[int] = []
    pack = ActivationStore._packed_contexts

    def counting_pack(self: ActivationStore, split: Any) -> Any:
        calls.append(1)
        return pack(self, split)

    monkeypatch.setattr(ActivationStore, "_packed_contexts", counting_pack)
    folder = store.harvest(HOOK, 600)[HOOK]
    assert len(calls) == 1, "the harvest reads the contexts the corpus check packed"
    cached = torch.cat(list(store.batches(HOOK, 100, 600)))
    assert folder.is_dir() and cached.shape == reference.shape
    # Same rows as a harvest that tokenised the corpus itself (the buffer shuffles, so compare sorted rows).
    assert torch.equal(sort_rows(cached), sort_rows(reference))
