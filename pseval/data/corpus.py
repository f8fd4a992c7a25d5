"""Training text: where it comes from, how it is split, and how it is packed into fixed-length contexts.

SAEs are trained (and the standard metrics measured) on plain text, never on PS-Eval prompts. The
default is the bundled corpus (Brown + nlp-corpus, see ``pseval/resources/corpus/NOTICE.md``) so that
everything works offline; a local ``.txt``/``.jsonl`` file or a Hugging Face dataset can replace it.

A fixed, content-based fraction of the documents (1 in :data:`HOLDOUT_EVERY`) is held out for
evaluation. The split is decided by a hash of each document's text, so it does not depend on the order
of the documents, and two copies of the same text always fall on the same side: held-out text is never
trained on.

Documents are tokenised in batches, concatenated with an end-of-sequence separator and cut into
contexts of ``context_size`` tokens, each starting with BOS (as SAELens does), so that no position is
wasted on padding. Separator, BOS and any other special token are masked out of training and metrics
by :func:`special_token_mask`.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import heapq
import itertools
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple

import torch

from pseval.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = [
    "BUNDLED",
    "HOLDOUT_EVERY",
    "ContextBatch",
    "Split",
    "bundled_corpus_dir",
    "corpus_identity",
    "is_holdout",
    "iter_context_batches",
    "iter_texts",
    "pack_tokens",
    "resolve_add_bos",
    "special_token_mask",
]

Split = Literal["train", "holdout", "all"]

BUNDLED = "bundled"
"""Name of the bundled corpus (Brown + nlp-corpus)."""

HOLDOUT_EVERY = 50
"""One document in ``HOLDOUT_EVERY`` (chosen by a hash of its text) is held out for evaluation."""

_BUNDLED_FILES = ("brown.txt.gz", "nlp-corpus.txt.gz")
_LOCAL_SUFFIXES = (".txt", ".jsonl", ".json", ".txt.gz", ".jsonl.gz", ".gz")


def bundled_corpus_dir() -> Path:
    """The folder holding the bundled corpus files (inside the installed package)."""
    return Path(__file__).resolve().parents[1] / "resources" / "corpus"


def is_holdout(text: str) -> bool:
    """Whether a document belongs to the held-out split (a stable hash of its text, 1 in HOLDOUT_EVERY)."""
    digest = hashlib.blake2b(text.encode("utf-8", errors="replace"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % HOLDOUT_EVERY == 0


def _in_split(text: str, split: Split) -> bool:
    if split == "all":
        return True
    return is_holdout(text) == (split == "holdout")


def _check_split(split: str) -> None:
    if split not in ("train", "holdout", "all"):
        raise ConfigError(f"unknown corpus split {split!r}", "use 'train', 'holdout' or 'all'")


# ----------------------------------------------------------------------------------------------------
# Reading documents


def _open_text(path: Path) -> Iterator[str]:
    """Lines of a plain or gzip-compressed UTF-8 text file, without line endings."""
    opener: Any = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rt", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                yield line.rstrip("\r\n")
    except (OSError, EOFError) as exc:
        raise DataError(f"cannot read corpus file {path}: {exc}", "pass a readable UTF-8 text file") from exc


def _read_txt_documents(path: Path) -> list[str]:
    """Documents of a text file: blank-line-separated paragraphs if it has blank lines, else one per line.

    Lines inside a paragraph are joined with a newline, so a paragraph keeps its natural layout.
    """
    lines = list(_open_text(path))
    if not any(not line.strip() for line in lines):
        return [line.strip() for line in lines if line.strip()]
    documents: list[str] = []
    block: list[str] = []
    for line in [*lines, ""]:
        if line.strip():
            block.append(line.strip())
        elif block:
            documents.append("\n".join(block))
            block = []
    return documents


def _iter_jsonl_documents(path: Path, text_field: str) -> Iterator[str]:
    for line_no, line in enumerate(_open_text(path), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(
                f"{path}:{line_no} is not valid JSON ({exc.msg})", "write one JSON object per line"
            ) from exc
        if not isinstance(record, dict) or not isinstance(record.get(text_field), str):
            raise DataError(
                f"{path}:{line_no} has no string field {text_field!r}",
                f'give every line a "{text_field}" field holding the document text',
            )
        text = record[text_field].strip()
        if text:
            yield text


@functools.lru_cache(maxsize=2)
def _bundled_documents(name: str) -> tuple[str, ...]:
    path = bundled_corpus_dir() / name
    if not path.is_file():
        raise DataError(
            f"the bundled corpus file {path} is missing", "reinstall pseval or pass a local corpus file"
        )
    return tuple(_read_txt_documents(path))


def _interleave(sources: Sequence[Sequence[str]]) -> Iterator[str]:
    """Merge several document lists so that each is spread evenly over the whole stream.

    Document ``i`` of a list of ``n`` sits at relative position ``(i + 0.5) / n``; merging on that
    position keeps the mixture proportional everywhere, so a short run sees every source.
    """
    keyed = [
        (((i + 0.5) / len(docs), k, doc) for i, doc in enumerate(docs)) for k, docs in enumerate(sources)
    ]
    for _, _, doc in heapq.merge(*keyed):
        yield doc


def _is_local_spec(corpus: str) -> bool:
    return Path(corpus).expanduser().exists() or corpus.lower().endswith(_LOCAL_SUFFIXES)


def is_local_corpus(corpus: str) -> bool:
    """True for the bundled corpus and local files; False for a Hugging Face dataset (streamed from the hub)."""
    return corpus == BUNDLED or _is_local_spec(corpus)


def _iter_hf_documents(corpus: str, text_field: str) -> Iterator[str]:
    """Documents of a Hugging Face dataset ``[hf:]owner/name[:config]`` (its ``train`` split, streamed)."""
    spec = corpus.removeprefix("hf:")
    name, _, config = spec.partition(":")
    try:
        import datasets
    except ImportError as exc:
        raise DataError(
            f"reading the Hugging Face dataset {name!r} needs the 'datasets' library",
            "pip install datasets, or pass a local .txt/.jsonl file as the corpus",
        ) from exc
    try:
        stream = datasets.load_dataset(name, config or None, split="train", streaming=True)
        iterator = iter(stream)
        first = next(iterator, None)
    except Exception as exc:  # the hub raises many different errors when offline or on a bad name
        raise DataError(
            f"cannot load the Hugging Face dataset {name!r}: the hub is unreachable or the name is wrong "
            f"({type(exc).__name__})",
            "pass a local .txt (one document per line) or .jsonl (field 'text') file, or pass --corpus bundled",
        ) from exc
    if first is None:
        return
    for record in itertools.chain([first], iterator):
        text = record.get(text_field) if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataError(
                f"the Hugging Face dataset {name!r} has no string field {text_field!r}",
                "choose a dataset with a 'text' column or set text_field",
            )
        if text.strip():
            yield text.strip()


def iter_texts(corpus: str = BUNDLED, split: Split = "train", text_field: str = "text") -> Iterator[str]:
    """Yield the documents of a corpus, restricted to one split.

    ``corpus`` is ``"bundled"`` (Brown and nlp-corpus, interleaved deterministically), a local ``.txt``
    file (one document per line, or blank-line-separated paragraphs), a ``.jsonl`` file (one object per
    line with a ``text`` field), either optionally gzip-compressed, or a Hugging Face dataset name
    (``owner/name``, ``hf:owner/name`` or ``hf:owner/name:config``; needs the hub). ``split`` is
    ``"train"``, ``"holdout"`` (1 document in :data:`HOLDOUT_EVERY`) or ``"all"``.

    Raises :class:`DataError` for a missing or empty file, a split with no document, or an unreachable hub.
    """
    _check_split(split)
    documents: Iterable[str]
    if corpus == BUNDLED:
        documents = _interleave([_bundled_documents(name) for name in _BUNDLED_FILES])
    elif _is_local_spec(corpus):
        path = Path(corpus).expanduser()
        if not path.exists():
            raise DataError(f"corpus file {path} does not exist", "check the path, or pass --corpus bundled")
        if not path.is_file():
            raise DataError(f"corpus {path} is not a file", "pass a .txt or .jsonl file")
        stem = path.name.lower().removesuffix(".gz")
        if stem.endswith((".jsonl", ".json")):
            documents = _iter_jsonl_documents(path, text_field)
        else:
            documents = _read_txt_documents(path)
    else:
        documents = _iter_hf_documents(corpus, text_field)

    n_seen = n_yielded = 0
    for doc in documents:
        n_seen += 1
        if _in_split(doc, split):
            n_yielded += 1
            yield doc
    if n_seen == 0:
        raise DataError(f"corpus {corpus!r} holds no text", "pass a file with at least one non-empty line")
    if n_yielded == 0:
        raise DataError(
            f"corpus {corpus!r} has no document in the {split!r} split ({n_seen} documents, 1 in "
            f"{HOLDOUT_EVERY} held out)",
            "pass a corpus with more documents (at least a few hundred), or use split='all'",
        )


def corpus_identity(corpus: str) -> dict[str, Any]:
    """What identifies a corpus's content in cache keys: a local file's path, size and modification time."""
    if corpus == BUNDLED:
        return {"corpus": BUNDLED, "files": list(_BUNDLED_FILES), "holdout_every": HOLDOUT_EVERY}
    if _is_local_spec(corpus):
        path = Path(corpus).expanduser().resolve()
        stat = path.stat() if path.exists() else None
        return {
            "corpus": str(path),
            "size": stat.st_size if stat else None,
            "mtime_ns": stat.st_mtime_ns if stat else None,
            "holdout_every": HOLDOUT_EVERY,
        }
    return {"corpus": corpus, "holdout_every": HOLDOUT_EVERY}


# ----------------------------------------------------------------------------------------------------
# Packing


def _bos_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    token_id = tokenizer.bos_token_id
    if token_id is None:
        token_id = tokenizer.eos_token_id
    return int(token_id) if token_id is not None else None


def _separator_id(tokenizer: PreTrainedTokenizerBase) -> int | None:
    token_id = tokenizer.eos_token_id
    if token_id is None:
        token_id = tokenizer.bos_token_id
    return int(token_id) if token_id is not None else None


def resolve_add_bos(tokenizer: PreTrainedTokenizerBase, add_bos: bool | None) -> bool:
    """``add_bos=None`` means: start contexts with BOS whenever the tokenizer has one (or an EOS to use)."""
    if add_bos is None:
        return _bos_id(tokenizer) is not None
    if add_bos and _bos_id(tokenizer) is None:
        raise ConfigError(
            "add_bos=True but the tokenizer has neither a BOS nor an EOS token", "set add_bos=False"
        )
    return add_bos


def _chunked(items: Iterable[str], size: int) -> Iterator[list[str]]:
    iterator = iter(items)
    while chunk := list(itertools.islice(iterator, size)):
        yield chunk


def pack_tokens(
    tokenizer: PreTrainedTokenizerBase,
    texts: Iterable[str],
    context_size: int = 128,
    add_bos: bool | None = None,
    docs_per_batch: int = 256,
) -> Iterator[torch.Tensor]:
    """Yield fixed-length contexts ``Tensor[context_size]`` (int64) cut from the concatenated documents.

    Each document is followed by the tokenizer's EOS (BOS if it has no EOS) so the model sees document
    boundaries; each context starts with BOS when ``add_bos`` (default: when the tokenizer has one),
    which gives every context the same attention sink and keeps it out of the trained positions. The
    last, incomplete context is dropped. Documents are tokenised ``docs_per_batch`` at a time, which
    lets fast tokenizers work in parallel.
    """
    if context_size < 2:
        raise ConfigError(f"context_size={context_size} is too small", "use a context_size of at least 2")
    use_bos = resolve_add_bos(tokenizer, add_bos)
    bos_id = _bos_id(tokenizer)
    separator = _separator_id(tokenizer)
    body = context_size - 1 if use_bos else context_size
    stream: list[int] = []
    for chunk in _chunked(texts, docs_per_batch):
        encoded = tokenizer(chunk, add_special_tokens=False, return_attention_mask=False, verbose=False)
        for ids in encoded["input_ids"]:
            if not ids:
                continue
            stream.extend(ids)
            if separator is not None:
                stream.append(separator)
        n_full = len(stream) // body
        if n_full == 0:
            continue
        block_CB = torch.tensor(stream[: n_full * body], dtype=torch.long).view(n_full, body)
        del stream[: n_full * body]
        if use_bos:
            assert bos_id is not None
            block_CB = torch.cat([torch.full((n_full, 1), bos_id, dtype=torch.long), block_CB], dim=1)
        yield from block_CB


def special_token_mask(input_ids: torch.Tensor, tokenizer: PreTrainedTokenizerBase) -> torch.Tensor:
    """Bool mask (shape of ``input_ids``), True at BOS/EOS/pad and every other special token.

    These positions carry no text (and BOS is an attention sink with outsized activations), so they are
    excluded from SAE training and from every metric. The unknown token is *not* special here: it
    stands for real (out-of-vocabulary) text.
    """
    special = set(tokenizer.all_special_ids)
    special.discard(tokenizer.unk_token_id)
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.pad_token_id):
        if token_id is not None:
            special.add(int(token_id))
    if not special:
        return torch.zeros_like(input_ids, dtype=torch.bool)
    ids = torch.tensor(sorted(special), dtype=input_ids.dtype, device=input_ids.device)
    return torch.isin(input_ids, ids)


class ContextBatch(NamedTuple):
    """A batch of packed contexts with its masks (all ``[B, T]``)."""

    input_ids: torch.Tensor
    """Token ids, int64 ``[B, T]``."""
    attention_mask: torch.Tensor
    """1 where there is a token (always all ones: contexts are packed, never padded), int64 ``[B, T]``."""
    special_mask: torch.Tensor
    """True at special-token positions (BOS, separators, pad), bool ``[B, T]``."""

    @property
    def token_mask(self) -> torch.Tensor:
        """True at the positions that count: real text tokens (bool ``[B, T]``)."""
        return self.attention_mask.bool() & ~self.special_mask


def iter_context_batches(
    tokenizer: PreTrainedTokenizerBase,
    corpus: str = BUNDLED,
    split: Split = "holdout",
    context_size: int = 128,
    batch_size: int = 8,
    n_tokens: int | None = None,
    add_bos: bool | None = None,
) -> Iterator[ContextBatch]:
    """Yield batches of ``batch_size`` packed contexts until ``n_tokens`` text tokens are covered.

    Only non-special positions count towards ``n_tokens``; the last batch is cut to the contexts needed.
    ``n_tokens=None`` runs to the end of the split. Stops early, without error, if the split is shorter.
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be positive", "use a batch_size of at least 1")
    contexts = pack_tokens(tokenizer, iter_texts(corpus, split), context_size, add_bos)
    covered = 0
    while n_tokens is None or covered < n_tokens:
        rows = list(itertools.islice(contexts, batch_size))
        if not rows:
            return
        input_ids = torch.stack(rows)
        special = special_token_mask(input_ids, tokenizer)
        if n_tokens is not None:
            cumulative = torch.cumsum((~special).sum(dim=1), dim=0) + covered
            needed = int(torch.searchsorted(cumulative, torch.tensor(n_tokens)).item()) + 1
            input_ids, special = input_ids[:needed], special[:needed]
        covered += int((~special).sum().item())
        yield ContextBatch(input_ids, torch.ones_like(input_ids), special)
