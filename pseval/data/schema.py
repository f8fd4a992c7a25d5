"""The records every PS-Eval dataset is made of.

A pair is one target word in two contexts. ``label`` follows WiC: 1 = same meaning ("mono-context"),
0 = different meaning ("poly-context"). Spans are character offsets ``[start, end)`` of the target's
occurrence in each (detokenised) context, so the target can be located through the tokenizer's offset
mapping instead of by substring search.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from pseval.data.senses import SenseSet

SAME_MEANING = 1
DIFFERENT_MEANING = 0

WORDFORM_CELLS: tuple[str, ...] = (
    "same_word_same_sense",
    "same_word_different_sense",
    "different_word_same_sense",
    "different_word_different_sense",
    "synonym_substitution",
)
"""Cells of the WordNet word form x meaning (2 x 2) dataset; the last is the same sentence with a synonym."""


class WordPair(BaseModel):
    """One PS-Eval item: a target word in two contexts and whether it means the same in both."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable identifier, e.g. 'wic-test-0042'.")
    word: str = Field(description="The target word (lemma) inserted into the prompt template.")
    pos: str = Field(description="Part of speech: 'N' (noun), 'V' (verb), 'A' (adjective) or 'R' (adverb).")
    context_1: str = Field(description="First context, natural text.")
    context_2: str = Field(description="Second context, natural text.")
    span_1: tuple[int, int] = Field(description="Character span [start, end) of the target in context_1.")
    span_2: tuple[int, int] = Field(description="Character span [start, end) of the target in context_2.")
    label: int = Field(description="1 = same meaning (mono-context), 0 = different meaning (poly-context).")
    source: str = Field(default="wic", description="Dataset the pair comes from ('wic', 'wordnet').")
    split: str = Field(default="test", description="Split of the source dataset.")
    word_2: str | None = Field(
        default=None,
        description="Target word of context_2 when it is another word than `word` (the different-word "
        "cells of the WordNet 2 x 2 dataset: synonyms or controls); None means `word`.",
    )
    cell: str | None = Field(
        default=None,
        description="Cell of the word form x meaning design (WordNet 2 x 2 dataset), e.g. "
        "'same_word_same_sense'; None for ordinary pairs.",
    )

    @property
    def target_2(self) -> str:
        """The word whose occurrence ``span_2`` marks and the template's ``{word}`` of context_2."""
        return self.word_2 if self.word_2 is not None else self.word


class DatasetStats(BaseModel):
    """How a dataset was filtered and balanced."""

    n_raw: int = Field(description="Pairs in the selected split(s) before filtering.")
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="Pairs dropped, by reason: 'target_not_found' (span outside its context), 'span_not_word' "
        "(the span's text is not the word or a form of it), 'multi_token_word' (the word is several tokens "
        "and the multi-token policy is 'drop'). Every reason is listed, 0 when none.",
    )
    kept_before_balance: dict[int, int] = Field(
        default_factory=dict, description="Pairs kept after filtering, by label."
    )
    kept: dict[int, int] = Field(default_factory=dict, description="Pairs in the final dataset, by label.")
    multi_token: str = Field(
        default="drop",
        description="Policy for words of several tokens: 'drop', 'last' (last sub-token) or 'mean'.",
    )
    kept_by_token_count: dict[str, int] = Field(
        default_factory=dict,
        description="Pairs in the final dataset whose ' ' + word is one token ('single') or several ('multi').",
    )


class PSEvalDataset(BaseModel):
    """A filtered (and by default balanced) list of pairs for one tokenizer."""

    name: str = Field(description="Dataset name ('wic' or 'wordnet').")
    split: str = Field(description="Split: 'train', 'dev', 'test' or 'all'.")
    balanced: bool = Field(description="Whether labels were balanced by seeded random downsampling.")
    seed: int = Field(description="Seed of the balancing downsample.")
    tokenizer_name: str = Field(default="", description="Tokenizer the single-token filter used.")
    pairs: list[WordPair]
    stats: DatasetStats
    word_n_tokens: list[int] = Field(
        default_factory=list,
        description="For each pair, in order: how many tokens ' ' + word is (1 = single-token word).",
    )
    senses: SenseSet | None = Field(
        default=None,
        description="Items for within-lemma sense retrieval: the WordNet sense items (wordnet-senses), or "
        "derived from the pairs' labels; None when not built.",
    )

    @property
    def multi_token(self) -> str:
        """The multi-token policy the dataset was loaded with ('drop', 'last' or 'mean')."""
        return self.stats.multi_token

    def token_count_groups(self) -> dict[str, list[int]]:
        """Pair indices by word length in tokens: ``{"single": [...], "multi": [...]}``."""
        counts = self.word_n_tokens or [1] * len(self.pairs)
        return {
            "single": [i for i, n in enumerate(counts) if n == 1],
            "multi": [i for i, n in enumerate(counts) if n > 1],
        }

    def __len__(self) -> int:
        return len(self.pairs)
