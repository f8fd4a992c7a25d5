"""Build the PS-Eval prompts and find the token whose activation is read.

Each context of a pair becomes one prompt, ``"{context} The {word} means"`` by default. The position read
is either the template's own ``{word}`` slot (the paper's choice: in a causal model it has seen the whole
context, and " means" after it cannot influence it) or the target's occurrence inside the context.

Positions come from character spans and the tokenizer's offset mapping, never from searching for the
word: a substring search would find "art" inside " party" or the first of two occurrences, and would miss
inflected forms ("ran" for "run"). Identical prompts (the same context appears in many WiC pairs) are
kept once, so the model runs on each only once; ``pair_index`` maps every pair to its two prompts.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from pseval.data.datasets import check_multi_token
from pseval.data.schema import PSEvalDataset
from pseval.errors import ConfigError, DataError

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

DEFAULT_TEMPLATE = "{context} The {word} means"
"""The PS-Eval prompt of Minegishi et al. (ICLR 2025)."""

Position = Literal["template", "context"]
POSITIONS: tuple[str, ...] = ("template", "context")

_CONTEXT = "{context}"
_WORD = "{word}"
_PLACEHOLDER_RE = re.compile(r"\{[A-Za-z_][A-Za-z0-9_]*\}")


class Prompt(BaseModel):
    """One unique prompt: its text, its token ids and the index of the token whose activation is read."""

    model_config = ConfigDict(frozen=True)

    text: str = Field(description="The rendered prompt.")
    input_ids: list[int] = Field(description="Token ids, including any BOS or other special tokens.")
    target_index: int = Field(description="Index into input_ids of the token whose activation is read.")
    target_token: str = Field(description="The target token decoded to text (e.g. ' bank'), for reports.")
    target_indices: list[int] = Field(
        default_factory=list,
        description="With multi_token='mean': every token of the target, whose activations are averaged "
        "(the last one is target_index); empty when only target_index is read.",
    )


class PromptSet(BaseModel):
    """The unique prompts of a dataset and, for each pair, the indices of its two prompts."""

    prompts: list[Prompt] = Field(description="Unique prompts (same ids and target index are kept once).")
    pair_index: list[tuple[int, int]] = Field(
        description="For each pair of the dataset, in order: indices into prompts of context_1 and context_2."
    )
    pair_ids: list[str] = Field(default_factory=list, description="Pair ids, aligned with pair_index.")
    item_index: list[int] = Field(
        default_factory=list,
        description="For each sense-retrieval item of the dataset (dataset.senses.items), in order: its prompt.",
    )
    template: str = Field(description="The prompt template with {context} and {word}.")
    position: Position = Field(description="'template' (the {word} slot) or 'context' (the word in context).")
    prepend_bos: bool | None = Field(
        description="True: BOS first; False: no special tokens; None: the tokenizer's default."
    )
    bos_token_id: int | None = Field(
        default=None, description="The token put first when prepend_bos is True (None: the tokenizer's BOS)."
    )
    multi_token: str = Field(
        default="drop",
        description="'drop' or 'last': read the target's last token; 'mean': the mean over its tokens.",
    )

    def __len__(self) -> int:
        return len(self.prompts)


def validate_template(template: str) -> str:
    """Check that ``template`` holds ``{context}`` and ``{word}`` exactly once and no other placeholder."""
    for slot in (_CONTEXT, _WORD):
        n = template.count(slot)
        if n != 1:
            raise ConfigError(
                f"prompt template {template!r} contains {slot} {n} times",
                f"use {slot} exactly once, e.g. {DEFAULT_TEMPLATE!r}",
            )
    unknown = sorted(set(_PLACEHOLDER_RE.findall(template)) - {_CONTEXT, _WORD})
    if unknown:
        raise ConfigError(
            f"prompt template {template!r} has unknown placeholder(s) {', '.join(unknown)}",
            "use only {context} and {word}",
        )
    return template


def render_template(template: str, context: str, word: str) -> tuple[str, tuple[int, int], int]:
    """Fill the template; return the text, the ``{word}`` span in it, and where ``{context}`` starts.

    Placeholders are replaced by slicing, not ``str.format``, so braces inside a context are left alone.
    """
    ci = template.index(_CONTEXT)
    wi = template.index(_WORD)
    if ci < wi:
        head, mid, tail = template[:ci], template[ci + len(_CONTEXT) : wi], template[wi + len(_WORD) :]
        text = head + context + mid + word + tail
        context_start = len(head)
        word_start = len(head) + len(context) + len(mid)
    else:
        head, mid, tail = template[:wi], template[wi + len(_WORD) : ci], template[ci + len(_CONTEXT) :]
        text = head + word + mid + context + tail
        word_start = len(head)
        context_start = len(head) + len(word) + len(mid)
    return text, (word_start, word_start + len(word)), context_start


def build_prompts(
    tokenizer: PreTrainedTokenizerBase,
    dataset: PSEvalDataset,
    template: str = DEFAULT_TEMPLATE,
    position: Position = "template",
    prepend_bos: bool | None = None,
    multi_token: str = "drop",
    bos_token_id: int | None = None,
) -> PromptSet:
    """Render, tokenise and locate the target token of both contexts of every pair.

    Args:
        tokenizer: a fast (Rust-backed) Hugging Face tokenizer; its offset mapping locates the target.
        dataset: the pairs, from :func:`pseval.data.datasets.load_dataset`.
        template: prompt template with ``{context}`` and ``{word}`` exactly once each.
        position: ``"template"`` reads the token covering the last character of the template's ``{word}``;
            ``"context"`` reads the last token overlapping the target's span in the context.
        prepend_bos: ``None`` keeps the tokenizer's default special tokens; ``True`` makes BOS the first
            token (and adds no other special token); ``False`` adds no special token.
        multi_token: ``"drop"`` and ``"last"`` read one token as described for ``position``; ``"mean"``
            records every token overlapping the target's span in ``target_indices`` (a word of one token
            keeps ``target_indices`` empty, so its activation is read exactly as under ``"drop"``).
        bos_token_id: with ``prepend_bos=True``, the token put first instead of the tokenizer's BOS (e.g. the
            EOS token a trainer used as BOS for a tokenizer without one).

    Raises:
        ConfigError: bad template or position, a slow tokenizer, or ``prepend_bos=True`` without a BOS token.
        DataError: a pair whose span does not fall on any token (e.g. the span lies outside the context).
    """
    bos_id = _check_settings(tokenizer, template, position, prepend_bos, multi_token, bos_token_id)
    texts, spans, owners = _render_targets(dataset, template, position)
    ids_list, offsets_list = _encode(tokenizer, texts, prepend_bos, bos_id)
    prompts, flat_index = _unique_prompts(
        tokenizer, texts, spans, owners, ids_list, offsets_list, position, multi_token
    )
    pair_index = [(flat_index[2 * i], flat_index[2 * i + 1]) for i in range(len(dataset.pairs))]
    item_index = flat_index[2 * len(dataset.pairs) :]
    return PromptSet(
        prompts=prompts,
        pair_index=pair_index,
        pair_ids=[p.id for p in dataset.pairs],
        item_index=item_index,
        template=template,
        position=position,
        prepend_bos=prepend_bos,
        bos_token_id=bos_id,
        multi_token=multi_token,
    )


def _check_settings(
    tokenizer: PreTrainedTokenizerBase,
    template: str,
    position: Position,
    prepend_bos: bool | None,
    multi_token: str,
    bos_token_id: int | None,
) -> int | None:
    """Refuse what :func:`build_prompts` cannot do; return the BOS id to put first (None: none)."""
    validate_template(template)
    if position not in POSITIONS:
        raise ConfigError(f"unknown target position {position!r}", f"use one of {', '.join(POSITIONS)}")
    check_multi_token(multi_token)
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"tokenizer {type(tokenizer).__name__} is not a fast tokenizer, so it gives no offset mapping",
            "load the tokenizer with use_fast=True (a tokenizer.json backed tokenizer)",
        )
    if not prepend_bos:
        return None
    bos_id = bos_token_id if bos_token_id is not None else tokenizer.bos_token_id
    if bos_id is None:
        raise ConfigError(
            f"BOS is to be prepended but tokenizer {type(tokenizer).__name__} has no BOS token",
            "pass --no-prepend-bos",
        )
    return bos_id


def _render_targets(
    dataset: PSEvalDataset, template: str, position: Position
) -> tuple[list[str], list[tuple[int, int]], list[str]]:
    """Every prompt text (both contexts of each pair, then the sense items), its target span and owner id."""
    texts: list[str] = []
    spans: list[tuple[int, int]] = []
    owners: list[str] = []
    for pair in dataset.pairs:
        for context, span, word in (
            (pair.context_1, pair.span_1, pair.word),
            (pair.context_2, pair.span_2, pair.target_2),
        ):
            start, end = span
            if not 0 <= start < end <= len(context):
                raise DataError(
                    f"pair {pair.id}: target span {start}-{end} is not inside its context ({len(context)} chars)",
                    "fix the span of that pair (character offsets [start, end) of the word in the context)",
                )
            text, word_span, context_start = render_template(template, context, word)
            texts.append(text)
            spans.append(
                word_span if position == "template" else (context_start + start, context_start + end)
            )
            owners.append(pair.id)
    # Sense-retrieval items after the pairs; most are contexts of pairs already, so dedup makes them free.
    sense_items = dataset.senses.items if dataset.senses is not None else []
    for item in sense_items:
        if not 0 <= item.span[0] < item.span[1] <= len(item.context):
            raise DataError(
                f"item {item.id}: target span {item.span[0]}-{item.span[1]} is not inside its context",
                "fix the span of that item (character offsets [start, end) of the word in the context)",
            )
        text, word_span, context_start = render_template(template, item.context, item.lemma)
        texts.append(text)
        spans.append(
            word_span
            if position == "template"
            else (context_start + item.span[0], context_start + item.span[1])
        )
        owners.append(item.id)
    return texts, spans, owners


def _unique_prompts(
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    spans: Sequence[tuple[int, int]],
    owners: Sequence[str],
    ids_list: Sequence[list[int]],
    offsets_list: Sequence[list[tuple[int, int]]],
    position: Position,
    multi_token: str,
) -> tuple[list[Prompt], list[int]]:
    """The distinct prompts (same tokens and target: one prompt) and, per rendered text, its prompt's index."""
    prompts: list[Prompt] = []
    seen: dict[tuple[tuple[int, ...], int, tuple[int, ...]], int] = {}
    flat_index: list[int] = []
    for text, span, owner, ids, offsets in zip(texts, spans, owners, ids_list, offsets_list, strict=True):
        target = _locate(offsets, span, last_char_only=position == "template")
        if target is None:
            raise DataError(
                f"pair {owner}: no token of the prompt {text!r} covers the target span {span[0]}-{span[1]}",
                "check the pair's span and the template",
            )
        pooled: list[int] = []
        if multi_token == "mean":
            pooled = _locate_all(offsets, span)
            if len(pooled) < 2:
                pooled = []  # one token: read exactly as without pooling
        key = (tuple(ids), target, tuple(pooled))
        if key not in seen:
            seen[key] = len(prompts)
            shown = pooled or [target]
            prompts.append(
                Prompt(
                    text=text,
                    input_ids=list(ids),
                    target_index=target,
                    target_token=str(tokenizer.decode([ids[i] for i in shown])),
                    target_indices=pooled,
                )
            )
        flat_index.append(seen[key])
    return prompts, flat_index


def _encode(
    tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], prepend_bos: bool | None, bos_id: int | None
) -> tuple[list[list[int]], list[list[tuple[int, int]]]]:
    """Tokenise with offsets; with an explicit ``prepend_bos`` control the special tokens ourselves."""
    if not texts:
        return [], []
    try:
        enc: Any = tokenizer(list(texts), add_special_tokens=prepend_bos is None, return_offsets_mapping=True)
    except NotImplementedError as exc:
        raise ConfigError(
            f"tokenizer {type(tokenizer).__name__} gives no offset mapping ({exc})",
            "load the tokenizer with use_fast=True",
        ) from None
    ids_list = [list(map(int, ids)) for ids in enc["input_ids"]]
    offsets_list = [[(int(s), int(e)) for s, e in offs] for offs in enc["offset_mapping"]]
    if prepend_bos and bos_id is not None:
        ids_list = [[bos_id, *ids] for ids in ids_list]
        offsets_list = [[(0, 0), *offs] for offs in offsets_list]
    return ids_list, offsets_list


def _locate_all(offsets: Sequence[tuple[int, int]], span: tuple[int, int]) -> list[int]:
    """Indices of every (non-special) token that overlaps ``span``, in order."""
    start, end = span
    return [i for i, (s, e) in enumerate(offsets) if s < e and s < end and e > start]


def _locate(offsets: Sequence[tuple[int, int]], span: tuple[int, int], last_char_only: bool) -> int | None:
    """Index of the last token covering ``span``'s last character (or, if not ``last_char_only``, any of it).

    Special tokens have empty offsets and never match. Byte-level BPE offsets may or may not include the
    leading space of a token (" bank" as 3-8 or 4-8); both contain the word's characters, so both match.
    """
    start, end = span
    found: int | None = None
    for i, (s, e) in enumerate(offsets):
        if s >= e:
            continue
        hit = (s <= end - 1 < e) if last_char_only else (s < end and e > start)
        if hit:
            found = i
    return found
