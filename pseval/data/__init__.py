"""The data stage: PS-Eval word pairs (WiC, WordNet, or your own), filtering, balancing and prompts."""

from __future__ import annotations

from pseval.data.datasets import (
    DATASET_NAMES,
    DROP_REASONS,
    MULTI_TOKEN_POLICIES,
    SPLITS,
    MultiTokenPolicy,
    dataset_summary,
    load_dataset,
)
from pseval.data.inflection import span_matches_word
from pseval.data.prompts import (
    DEFAULT_TEMPLATE,
    Prompt,
    PromptSet,
    build_prompts,
    render_template,
    validate_template,
)
from pseval.data.schema import (
    DIFFERENT_MEANING,
    SAME_MEANING,
    WORDFORM_CELLS,
    DatasetStats,
    PSEvalDataset,
    WordPair,
)
from pseval.data.wic import WIC_SPLITS, Detokenized, WicRecord, detokenize, read_wic_split

__all__ = [
    "DATASET_NAMES",
    "DEFAULT_TEMPLATE",
    "DIFFERENT_MEANING",
    "DROP_REASONS",
    "MULTI_TOKEN_POLICIES",
    "SAME_MEANING",
    "SPLITS",
    "WIC_SPLITS",
    "WORDFORM_CELLS",
    "DatasetStats",
    "Detokenized",
    "MultiTokenPolicy",
    "PSEvalDataset",
    "Prompt",
    "PromptSet",
    "WicRecord",
    "WordPair",
    "build_prompts",
    "dataset_summary",
    "detokenize",
    "load_dataset",
    "read_wic_split",
    "render_template",
    "span_matches_word",
    "validate_template",
]
