"""The records every PS-Eval dataset is made of.

A pair is one target word in two contexts. ``label`` follows WiC: 1 = same meaning ("mono-context"),
0 = different meaning ("poly-context"). Spans are character offsets ``[start, end)`` of the target's
occurrence in each (detokenised) context, so the target can be located through the tokenizer's offset
mapping instead of by substring search.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

SAME_MEANING = 1
DIFFERENT_MEANING = 0


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


class DatasetStats(BaseModel):
    """How a dataset was filtered and balanced."""

    n_raw: int = Field(description="Pairs in the selected split(s) before filtering.")
    dropped: dict[str, int] = Field(
        default_factory=dict, description="Pairs dropped, by reason (e.g. 'multi_token_word')."
    )
    kept_before_balance: dict[int, int] = Field(
        default_factory=dict, description="Pairs kept after filtering, by label."
    )
    kept: dict[int, int] = Field(default_factory=dict, description="Pairs in the final dataset, by label.")


class PSEvalDataset(BaseModel):
    """A filtered (and by default balanced) list of pairs for one tokenizer."""

    name: str = Field(description="Dataset name ('wic' or 'wordnet').")
    split: str = Field(description="Split: 'train', 'dev', 'test' or 'all'.")
    balanced: bool = Field(description="Whether labels were balanced by seeded random downsampling.")
    seed: int = Field(description="Seed of the balancing downsample.")
    tokenizer_name: str = Field(default="", description="Tokenizer the single-token filter used.")
    pairs: list[WordPair]
    stats: DatasetStats

    def __len__(self) -> int:
        return len(self.pairs)
