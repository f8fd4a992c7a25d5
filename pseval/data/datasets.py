"""Load a PS-Eval dataset for one tokenizer: filter, balance, and record why pairs were dropped.

Every pair is checked before it is scored, and each pair that fails is counted under its reason in
``PSEvalDataset.stats.dropped`` (every reason is always listed, 0 when none):

- ``target_not_found``: a span outside its context or on whitespace only (WiC: a target index outside
  the sentence);
- ``span_not_word``: the span's text is not the word nor a form of it (rule:
  :func:`pseval.data.inflection.span_matches_word`), e.g. word "curious" with span text "nothing";
- ``multi_token_word``: ``" " + word`` is several tokens and the multi-token policy is ``drop``.

PS-Eval compares the top SAE latent at the target word's token across two contexts, so by default (the
paper's choice, ``multi_token="drop"``) the word inserted in the prompt template must be a single token.
``"last"`` and ``"mean"`` keep such words (the prompts then read the last sub-token or the mean over the
sub-tokens); the single-token pairs kept are then exactly those of ``"drop"`` (balanced by the same
draws; under ``max_pairs``, which caps both groups together, a proportional share of them) and the
recovered multi-token pairs are balanced on their own, so results on the
single-token pairs stay comparable with the paper's setting and the recovered pairs can be reported
separately (``PSEvalDataset.word_n_tokens``).

The two labels are balanced by seeded random downsampling of the larger class, so that accuracy and the
other confusion-matrix metrics are not skewed by the label ratio, and the kept pairs stay in file order so
results are easy to trace back to the source.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from pydantic import ValidationError

from pseval.data.inflection import span_matches_word
from pseval.data.schema import DIFFERENT_MEANING, SAME_MEANING, DatasetStats, PSEvalDataset, WordPair
from pseval.data.sense_pairs import pairs_of_items, senses_from_pairs
from pseval.data.senses import (
    SENSE_DATASET,
    SenseItem,
    SenseSet,
    SenseStats,
    read_sense_items,
    wordnet_senses_path,
)
from pseval.data.wic import WIC_SPLITS, read_wic_split, wic_root
from pseval.errors import ConfigError, DataError, validation_details

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DATASET_NAMES: tuple[str, ...] = ("wic", "wordnet", "wordnet-2x2", SENSE_DATASET)
"""Datasets shipped with pseval; a path to a ``.jsonl`` file of ``WordPair`` records also works."""

SPLITS: tuple[str, ...] = (*WIC_SPLITS, "all")
"""Accepted ``split`` values; ``all`` concatenates train, dev and test."""

DROP_MULTI_TOKEN = "multi_token_word"
DROP_TARGET_NOT_FOUND = "target_not_found"
DROP_SPAN_NOT_WORD = "span_not_word"
DROP_REASONS: tuple[str, ...] = (DROP_TARGET_NOT_FOUND, DROP_SPAN_NOT_WORD, DROP_MULTI_TOKEN)
"""Every reason a pair can be dropped for, in the order the checks run."""

MultiTokenPolicy = Literal["drop", "last", "mean"]
MULTI_TOKEN_POLICIES: tuple[str, ...] = ("drop", "last", "mean")
"""What to do with a word whose ``" " + word`` is several tokens: drop the pair (the paper), read the
last sub-token, or read the mean of the sub-tokens' activations."""
LABELS: tuple[int, int] = (DIFFERENT_MEANING, SAME_MEANING)
WORD_PAIR_FIELDS = "id, word, pos, context_1, context_2, span_1, span_2, label (optional: split, word_2)"


def check_multi_token(policy: str) -> MultiTokenPolicy:
    """Return ``policy`` if it is a multi-token policy; raise ConfigError (naming ``--multi-token``) if not."""
    if policy not in MULTI_TOKEN_POLICIES:
        raise ConfigError(
            f"unknown multi-token policy {policy!r}",
            f"use --multi-token with one of {', '.join(MULTI_TOKEN_POLICIES)}",
        )
    return policy  # type: ignore[return-value]


def check_dataset(name: str) -> None:
    """Raise DataError if ``name`` is not a dataset that can be read (unknown, missing or malformed file)."""
    _read_pairs(name, "all")


def wordnet_pairs_path() -> Path:
    """Where the shipped WordNet pairs live (``pseval/resources/wordnet/pairs.jsonl``)."""
    return Path(str(resources.files("pseval").joinpath("resources").joinpath("wordnet"))) / "pairs.jsonl"


def wordnet_2x2_pairs_path() -> Path:
    """Where the shipped WordNet word form x meaning pairs live (``pseval/resources/wordnet/pairs_2x2.jsonl``).

    Each pair has a ``cell`` (see ``docs/wordnet-dataset.md``); splits are ``dev`` and ``test``.
    """
    return wordnet_pairs_path().with_name("pairs_2x2.jsonl")


def load_dataset(
    tokenizer: PreTrainedTokenizerBase,
    name: str = "wic",
    split: str = "test",
    balance: bool = True,
    seed: int = 0,
    max_pairs: int | None = None,
    multi_token: MultiTokenPolicy = "drop",
) -> PSEvalDataset:
    """Load ``name``'s ``split``, drop pairs that fail a check, and balance the labels.

    Args:
        tokenizer: the model's tokenizer; the single-token filter depends on it.
        name: ``"wic"`` (vendored WiC v1.0), ``"wordnet"`` (the shipped WordNet pairs) or a path to a
            ``.jsonl`` file with one ``WordPair`` JSON object per line.
        split: ``"train"``, ``"dev"``, ``"test"`` or ``"all"``; for ``.jsonl`` files it selects records by their
            ``split`` field.
        balance: downsample the larger label class at random (``numpy.random.default_rng(seed)``) to the size
            of the smaller one; the kept pairs keep their original order.
        seed: seed of the balancing (and ``max_pairs``) downsample.
        max_pairs: keep at most this many pairs in all, drawn at random with the same generator after
            balancing (half per label when ``balance`` is on, so it is then rounded down to an even number).
            With ``multi_token`` ``last``/``mean`` the cap is shared between the single- and the multi-token
            pairs in proportion to their balanced counts (at least one pair per label each when the cap
            allows two per label); the single-token pairs are then drawn from those ``drop`` balances, but
            fewer of them than ``drop`` keeps under the same cap.
        multi_token: ``"drop"`` (default) drops pairs whose word is several tokens; ``"last"`` and
            ``"mean"`` keep them (see the module docstring).

    Raises:
        DataError: unknown dataset, missing or malformed file, or no pair left after filtering.
        ConfigError: an unknown split or a ``max_pairs`` below what a dataset needs.
    """
    _check_load_settings(split, multi_token, seed, max_pairs, balance)
    short_name, raw_pairs, n_invalid = _read_pairs(name, split)
    count_tokens = _word_token_counter(tokenizer)
    single, multi, dropped = _filter_pairs(raw_pairs, count_tokens, multi_token)
    dropped[DROP_TARGET_NOT_FOUND] += n_invalid
    n_raw = len(raw_pairs) + n_invalid

    before = _count_labels([*single, *multi])
    if not single and not multi:
        raise _no_pair_left(name, split, n_raw, dropped, multi_token)
    # The single-token pairs are balanced exactly as under "drop" (same generator, same draws); recovered
    # multi-token pairs get their own generator so they never change which single-token pairs are kept.
    single_rng, multi_rng = np.random.default_rng(seed), np.random.default_rng([seed, 1])
    if balance:
        single, multi = _balance(single, single_rng), (_balance(multi, multi_rng) if multi else multi)
    single_cap, multi_cap = _split_cap(max_pairs, balance, len(single), len(multi))
    single = _cap(single, single_cap, balance, single_rng)
    multi = _cap(multi, multi_cap, balance, multi_rng)
    if balance and not single and not multi:
        raise DataError(
            f"dataset {name!r} split {split!r} has only label "
            f"{next(k for k, v in before.items() if v)} pairs after filtering, so balancing leaves none",
            "pass --no-balance, or use a dataset with both labels",
        )
    kept_ids = {p.id for p in (*single, *multi)}
    kept = [p for p in raw_pairs if p.id in kept_ids] if multi else single
    n_tokens = [_pair_tokens(p, count_tokens) for p in kept]

    stats = DatasetStats(
        n_raw=n_raw,
        dropped=dict(sorted(dropped.items())),
        kept_before_balance=before,
        kept=_count_labels(kept),
        multi_token=multi_token,
        kept_by_token_count={
            "single": sum(1 for n in n_tokens if n == 1),
            "multi": sum(1 for n in n_tokens if n > 1),
        },
    )
    return PSEvalDataset(
        name=short_name,
        split=split,
        balanced=balance,
        seed=seed,
        tokenizer_name=_tokenizer_name(tokenizer),
        pairs=kept,
        stats=stats,
        word_n_tokens=n_tokens,
        senses=_sense_set(name, short_name, split, kept, count_tokens, multi_token),
    )


def _check_load_settings(
    split: str, multi_token: MultiTokenPolicy, seed: int, max_pairs: int | None, balance: bool
) -> None:
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}", f"use --split with one of {', '.join(SPLITS)}")
    check_multi_token(multi_token)
    if seed < 0:  # numpy's generators take no negative seed
        raise ConfigError(f"seed {seed} is negative", "pass --seed 0 or another seed >= 0")
    if max_pairs is not None and max_pairs < (2 if balance else 1):
        raise ConfigError(
            f"max_pairs={max_pairs} leaves no pair{' per label' if balance else ''}",
            f"pass --max-pairs {2 if balance else 1} or more (or leave it out for all pairs)",
        )


def _filter_pairs(
    raw_pairs: Sequence[WordPair], count_tokens: Callable[[str], int], multi_token: MultiTokenPolicy
) -> tuple[list[WordPair], list[WordPair], Counter[str]]:
    """The single-token and the kept multi-token pairs, in order, and the count of each drop reason."""
    dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
    single: list[WordPair] = []
    multi: list[WordPair] = []
    for pair in raw_pairs:
        if not (_span_ok(pair.context_1, pair.span_1) and _span_ok(pair.context_2, pair.span_2)):
            dropped[DROP_TARGET_NOT_FOUND] += 1
        elif not (
            _span_is_word(pair.context_1, pair.span_1, pair.word)
            and _span_is_word(pair.context_2, pair.span_2, pair.target_2)
        ):
            dropped[DROP_SPAN_NOT_WORD] += 1
        elif _pair_tokens(pair, count_tokens) == 1:
            single.append(pair)
        elif multi_token == "drop":
            dropped[DROP_MULTI_TOKEN] += 1
        else:
            multi.append(pair)
    return single, multi, dropped


def _sense_set(
    name: str, short_name: str, split: str, kept: list[WordPair], count_tokens: Any, multi_token: str
) -> SenseSet:
    """The sense-retrieval items: every WordNet sense item that passes the pair checks, or from the pairs."""
    source = sense_items_source(name)
    if source is None:
        return senses_from_pairs(kept, short_name)
    items = read_sense_items(source, split)
    dropped: Counter[str] = Counter({reason: 0 for reason in DROP_REASONS})
    usable: list[SenseItem] = []
    for item in items:
        if not _span_ok(item.context, item.span):
            dropped[DROP_TARGET_NOT_FOUND] += 1
        elif not _span_is_word(item.context, item.span, item.lemma):
            dropped[DROP_SPAN_NOT_WORD] += 1
        elif count_tokens(item.lemma) > 1 and multi_token == "drop":
            dropped[DROP_MULTI_TOKEN] += 1
        else:
            usable.append(item)
    return SenseSet(
        source=SENSE_DATASET,
        items=usable,
        different=None,
        stats=SenseStats(n_raw=len(items), dropped=dict(sorted(dropped.items()))),
    )


def _no_pair_left(name: str, split: str, n_raw: int, dropped: Counter[str], multi_token: str) -> DataError:
    """The error for a split that filtering left empty, with the fix of each reason its pairs were dropped for."""
    if n_raw == 0:
        return DataError(
            f"dataset {name!r} split {split!r} holds no pair",
            "add pairs to that split (the split field of each record), or pass another --split",
        )
    reasons = ", ".join(f"{k}: {v}" for k, v in sorted(dropped.items()) if v)
    fixes = []
    if dropped[DROP_TARGET_NOT_FOUND]:
        fixes.append(
            "make span_1 and span_2 the [start, end) character offsets of the word in context_1 and context_2"
        )
    if dropped[DROP_SPAN_NOT_WORD]:
        fixes.append(
            "make the text at span_1 and span_2 the word (or a form of it, e.g. banks for bank); "
            "check that the spans count characters, not tokens or words"
        )
    if dropped[DROP_MULTI_TOKEN] and multi_token == "drop":
        fixes.append("pass --multi-token mean (or last) to keep words of several tokens")
    return DataError(
        f"dataset {name!r} split {split!r} has no pair left after filtering ({n_raw} read; dropped {reasons})",
        "; ".join(fixes) or "use another --split or --dataset",
    )


def dataset_summary(ds: PSEvalDataset) -> dict[str, Any]:
    """A JSON-ready summary of a loaded dataset (sizes per label and part of speech, drops by reason)."""
    return {
        "name": ds.name,
        "split": ds.split,
        "tokenizer": ds.tokenizer_name,
        "balanced": ds.balanced,
        "seed": ds.seed,
        "n_pairs": len(ds.pairs),
        "n_raw": ds.stats.n_raw,
        "by_label": {str(k): v for k, v in ds.stats.kept.items()},
        "kept_before_balance": {str(k): v for k, v in ds.stats.kept_before_balance.items()},
        "dropped": dict(ds.stats.dropped),
        "multi_token": ds.stats.multi_token,
        "by_token_count": dict(ds.stats.kept_by_token_count),
        "by_pos": dict(sorted(Counter(p.pos for p in ds.pairs).items())),
        "n_words": len({p.word for p in ds.pairs}),
        "senses": _senses_summary(ds.senses),
    }


def _senses_summary(senses: SenseSet | None) -> dict[str, Any] | None:
    """Sense-retrieval items, lemmas with an anchor and anchors (None when the dataset has no sense items)."""
    if senses is None:
        return None
    groups = [g for g in senses.groups() if g.has_anchor()]
    return {
        "source": senses.source,
        "n_items": len(senses.items),
        "n_lemmas_with_anchor": len(groups),
        "n_anchors": sum(len(g.anchors()) for g in groups),
        "dropped": dict(senses.stats.dropped),
        "n_conflicting_lemmas": senses.stats.n_conflicting_lemmas,
    }


def dataset_sha256(name: str) -> str:
    """SHA-256 of everything dataset ``name`` is read from (every split), so results can name their data.

    WiC: its six vendored ``{split}.{data,gold}.txt`` files; the shipped WordNet sets and ``.jsonl`` paths:
    the pairs file. A changed file (a rebuilt ``wordnet-2x2``, an edited ``.jsonl``) changes the hash, so a
    stored result of the old content is not taken for a result of the new one.

    Raises:
        DataError: unknown dataset or missing file (the same errors as :func:`load_dataset`).
    """
    digest = hashlib.sha256()
    if name == "wic":
        root = wic_root()
        parts = [
            (f"{s}.{kind}.txt", root.joinpath(f"{s}.{kind}.txt"))
            for s in WIC_SPLITS
            for kind in ("data", "gold")
        ]
        for file_name, file in parts:
            digest.update(file_name.encode() + b"\0" + file.read_bytes() + b"\0")
        return digest.hexdigest()
    path = _pairs_file(name)
    digest.update(path.read_bytes())
    return digest.hexdigest()


def _pairs_file(name: str) -> Path:
    """The ``.jsonl`` file of a shipped WordNet set or of a path; DataError when there is none."""
    if name in ("wordnet", "wordnet-2x2", SENSE_DATASET):
        path = {"wordnet": wordnet_pairs_path, "wordnet-2x2": wordnet_2x2_pairs_path}.get(
            name, wordnet_senses_path
        )()
        if not path.is_file():
            raise DataError(
                f"the WordNet pairs file {path} is not part of this installation",
                "reinstall pseval (the file ships with it), or use --dataset wic",
            )
        return path
    if name.endswith(".jsonl"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise DataError(f"dataset file {path} does not exist", "check the path to the .jsonl file")
        return path
    raise DataError(
        f"unknown dataset {name!r}",
        f"use one of {', '.join(DATASET_NAMES)}, or a path to a .jsonl file of WordPair records",
    )


def _read_pairs(name: str, split: str) -> tuple[str, list[WordPair], int]:
    """Return (dataset name, pairs of the split, number of source records whose target index is invalid)."""
    if name == "wic":
        splits = WIC_SPLITS if split == "all" else (split,)
        pairs: list[WordPair] = []
        n_invalid = 0
        for s in splits:
            for record in read_wic_split(s):
                if record.indices_valid:
                    pairs.append(record.to_word_pair())
                else:
                    n_invalid += 1
        return "wic", pairs, n_invalid
    path = _pairs_file(name)
    short_name = name if name in DATASET_NAMES else path.stem
    if sense_items_source(name) is not None:
        # PS-Eval on the same items: every pair of two items of one lemma (labels balanced as usual).
        items = read_sense_items(path, split)
        if not items:
            raise DataError(
                f"{path} has no sense item in split {split!r}",
                "pass --split all, or another --split that the file's items use",
            )
        return short_name, pairs_of_items(items), 0
    return short_name, _select_split(_read_jsonl(path), split, path), 0


def sense_items_source(name: str) -> Path | None:
    """The sense-items file behind ``name``: the shipped one, a ``.jsonl`` of sense items, or None (pairs)."""
    if name == SENSE_DATASET:
        return wordnet_senses_path()
    if not name.endswith(".jsonl"):
        return None
    path = Path(name).expanduser()
    if not path.is_file():
        return None
    with path.open(encoding="utf-8") as f:
        first = next((line for line in f if line.strip()), "")
    try:
        record = json.loads(first)
    except json.JSONDecodeError:
        return None
    return path if isinstance(record, dict) and {"lemma", "sense", "context"} <= record.keys() else None


def _read_jsonl(path: Path) -> list[WordPair]:
    pairs: list[WordPair] = []
    seen: set[str] = set()
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(
                    f"{path}:{lineno} is not JSON ({exc.msg} at column {exc.colno})",
                    "write one JSON object per line with the WordPair fields " + WORD_PAIR_FIELDS,
                ) from None
            if not isinstance(record, dict):
                raise DataError(
                    f"{path}:{lineno} is a JSON {type(record).__name__}, not an object",
                    "write one JSON object per line with the WordPair fields " + WORD_PAIR_FIELDS,
                )
            try:
                pair = WordPair.model_validate(record)
            except ValidationError as exc:
                raise DataError(
                    f"{path}:{lineno} is not a valid WordPair record ({validation_details(exc)})",
                    "correct the field(s) named on that line; the WordPair fields are " + WORD_PAIR_FIELDS,
                ) from None
            if pair.label not in LABELS:
                raise DataError(
                    f"{path}:{lineno}: label {pair.label} is not 0 or 1",
                    "use 1 for same meaning and 0 for different meaning",
                )
            if pair.id in seen:
                raise DataError(
                    f"{path}:{lineno}: duplicate pair id {pair.id!r}", "give every pair a unique id"
                )
            seen.add(pair.id)
            pairs.append(pair)
    return pairs


def _select_split(pairs: list[WordPair], split: str, path: Path) -> list[WordPair]:
    if split == "all":
        return pairs
    selected = [p for p in pairs if p.split == split]
    if pairs and not selected:
        present = ", ".join(sorted({p.split for p in pairs}))
        raise DataError(
            f"{path} has no pair in split {split!r} (splits present: {present})",
            f"pass --split all, or --split with one of: {present}",
        )
    return selected


def _span_ok(context: str, span: tuple[int, int]) -> bool:
    start, end = span
    return 0 <= start < end <= len(context) and not context[start:end].isspace()


def _span_is_word(context: str, span: tuple[int, int], word: str) -> bool:
    return span_matches_word(context[span[0] : span[1]], word)


def _word_token_counter(tokenizer: PreTrainedTokenizerBase) -> Any:
    """``count(word)``: how many tokens ``" " + word`` is (what the template's ``{word}`` slot holds)."""
    cache: dict[str, int] = {}

    def count(word: str) -> int:
        if word not in cache:
            cache[word] = len(tokenizer(" " + word, add_special_tokens=False)["input_ids"])
        return cache[word]

    return count


def _pair_tokens(pair: WordPair, count_tokens: Any) -> int:
    """Tokens of the pair's longer target word (both words count when the contexts use two words)."""
    return max(count_tokens(pair.word), count_tokens(pair.target_2))


def _split_cap(max_pairs: int | None, balance: bool, n_single: int, n_multi: int) -> tuple[int, int]:
    """How many single- and multi-token pairs ``max_pairs`` keeps: together at most ``max_pairs``.

    The cap is shared in proportion to the two groups' (balanced) sizes, in whole pairs per label when
    balanced; each group keeps at least one pair per label when the cap allows two per label, so neither
    breakdown disappears. Without multi-token pairs the single-token ones get the whole cap (as ``drop``).
    """
    if max_pairs is None:
        return n_single, n_multi
    unit = 2 if balance else 1  # a balanced group is cut in steps of one pair per label
    budget, single, multi = max_pairs // unit, n_single // unit, n_multi // unit
    if single + multi <= budget:
        return n_single, n_multi
    share = round(budget * single / (single + multi))
    if single and multi and budget >= 2:
        share = min(max(share, 1), budget - 1)
    multi_kept = min(multi, budget - min(single, share))
    single_kept = min(single, budget - multi_kept)
    return single_kept * unit, multi_kept * unit


def _cap(pairs: list[WordPair], cap: int, balance: bool, rng: np.random.Generator) -> list[WordPair]:
    return _subsample(pairs, cap, balance, rng) if len(pairs) > cap else pairs


def _count_labels(pairs: Iterable[WordPair]) -> dict[int, int]:
    counts = Counter(p.label for p in pairs)
    return {label: counts.get(label, 0) for label in LABELS}


def _balance(pairs: list[WordPair], rng: np.random.Generator) -> list[WordPair]:
    """Downsample the larger label class to the smaller one's size; keep the original order."""
    by_label = {label: [i for i, p in enumerate(pairs) if p.label == label] for label in LABELS}
    n_min = min(len(v) for v in by_label.values())
    keep: list[int] = []
    for label in LABELS:
        idx = by_label[label]
        if len(idx) > n_min:
            idx = sorted(int(i) for i in rng.choice(idx, size=n_min, replace=False))
        keep.extend(idx)
    return [pairs[i] for i in sorted(keep)]


def _subsample(
    pairs: list[WordPair], max_pairs: int, balance: bool, rng: np.random.Generator
) -> list[WordPair]:
    """Keep ``max_pairs`` pairs at random (half per label when balanced), in the original order."""
    if balance:
        per_label = max_pairs // 2
        keep: list[int] = []
        for label in LABELS:
            idx = [i for i, p in enumerate(pairs) if p.label == label]
            keep.extend(int(i) for i in rng.choice(idx, size=min(per_label, len(idx)), replace=False))
    else:
        keep = [int(i) for i in rng.choice(len(pairs), size=max_pairs, replace=False)]
    return [pairs[i] for i in sorted(keep)]


def _tokenizer_name(tokenizer: PreTrainedTokenizerBase) -> str:
    name = getattr(tokenizer, "name_or_path", "") or ""
    return str(name) or type(tokenizer).__name__
