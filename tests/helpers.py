"""Tiny random-weight models and a word-level tokenizer for fast tests.

Everything is built from configs in memory (no downloads, no files), seeded, 2-3 layers and a
hidden size of 32-64, so a forward pass takes milliseconds. Import with
``from tests.helpers import tiny_model, tiny_tokenizer, tiny_loaded``.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import nn

TINY_VOCAB_WORDS: list[str] = [
    "[PAD]", "[UNK]", "[BOS]", "[EOS]", ".", ",", "the", "a", "an", "of", "to", "in", "and", "is", "was",
    "he", "she", "it", "they", "we", "you", "i", "his", "her", "their", "our", "means", "The", "bank",
    "river", "money", "water", "bark", "dog", "tree", "play", "game", "music", "light", "heavy", "bright",
    "run", "ran", "walk", "fast", "slow", "book", "read", "table", "chair", "sat", "on", "by", "with",
    "for", "from", "at", "this", "that", "word", "sense", "same", "different", "sentence", "context",
    "plant", "factory", "green", "grow", "spring", "season", "coil", "jump", "bat", "ball", "animal",
    "night", "day", "fair", "price", "just", "rose", "flower", "stood", "up", "down", "left", "right",
    "hand", "side", "party", "political", "birthday", "match", "fire", "stick", "date", "fruit", "meeting",
]  # fmt: skip
"""Vocabulary of :func:`tiny_tokenizer` (ids follow the list order; 0 is the pad token)."""

TINY_VOCAB_SIZE = 128
"""Vocabulary size of the tiny models (>= len(TINY_VOCAB_WORDS))."""

FAMILIES: tuple[str, ...] = (
    "llama",
    "mistral",
    "qwen2",
    "qwen3",
    "gemma",
    "gemma2",
    "gemma3_text",
    "gpt2",
    "gpt_neox",
    "gpt_neox_sequential",
    "bert",
)
"""Families :func:`tiny_model` builds; ``gpt_neox`` uses a parallel residual, ``gpt_neox_sequential`` not."""

DECODER_FAMILIES: tuple[str, ...] = tuple(f for f in FAMILIES if f != "bert")


def tiny_config(family: str = "llama", n_layers: int = 3, d_model: int = 32, **overrides: Any) -> Any:
    """A tiny config of ``family`` (see :data:`FAMILIES`)."""
    import transformers as tf

    common: dict[str, Any] = {
        "vocab_size": TINY_VOCAB_SIZE,
        "hidden_size": d_model,
        "num_hidden_layers": n_layers,
        "num_attention_heads": 4,
        "intermediate_size": 2 * d_model,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
        "bos_token_id": 2,
        "eos_token_id": 3,
    }
    rope = {**common, "num_key_value_heads": 2}
    if family in ("llama", "mistral", "qwen2", "qwen3", "gemma"):
        cls = {
            "llama": tf.LlamaConfig,
            "mistral": tf.MistralConfig,
            "qwen2": tf.Qwen2Config,
            "qwen3": tf.Qwen3Config,
            "gemma": tf.GemmaConfig,
        }[family]
        kwargs = dict(rope)
        if family in ("qwen3", "gemma"):
            kwargs["head_dim"] = d_model // 4
        if family == "mistral":
            kwargs["sliding_window"] = None
    elif family in ("gemma2", "gemma3_text"):
        cls = tf.Gemma2Config if family == "gemma2" else tf.Gemma3TextConfig
        kwargs = {
            **rope,
            "head_dim": d_model // 4,
            "sliding_window": 16,
            "query_pre_attn_scalar": d_model // 4,
        }
    elif family == "gpt2":
        cls = tf.GPT2Config
        kwargs = {
            "vocab_size": TINY_VOCAB_SIZE,
            "n_embd": d_model,
            "n_layer": n_layers,
            "n_head": 4,
            "n_positions": 128,
            "bos_token_id": 2,
            "eos_token_id": 3,
        }
    elif family in ("gpt_neox", "gpt_neox_sequential"):
        cls = tf.GPTNeoXConfig
        kwargs = {**common, "use_parallel_residual": family == "gpt_neox", "rotary_pct": 0.5}
    elif family == "bert":
        cls = tf.BertConfig
        kwargs = {**common}
        kwargs.pop("bos_token_id")
        kwargs.pop("eos_token_id")
    else:
        raise ValueError(f"no tiny config for family {family!r}; choose from {FAMILIES}")
    kwargs.update(overrides)
    return cls(**kwargs)


def tiny_model(
    family: str = "llama", n_layers: int = 3, d_model: int = 32, seed: int = 0, **overrides: Any
) -> nn.Module:
    """A seeded random-weight model of ``family`` with its LM head, in eval mode (float32, CPU)."""
    import transformers as tf

    config = tiny_config(family, n_layers=n_layers, d_model=d_model, **overrides)
    torch.manual_seed(seed)
    if family == "bert":
        model = tf.BertForMaskedLM(config)
    else:
        model = tf.AutoModelForCausalLM.from_config(config)
    # Random init gives tiny norm weights on some families (Gemma's are zero-centred); perturb every
    # parameter so no sublayer output is trivially zero and equalities in tests are meaningful.
    with torch.no_grad():
        for param in model.parameters():
            param.add_(torch.randn_like(param) * 0.05)
    model.eval()
    return model


def tiny_tokenizer() -> Any:
    """A fast word-level tokenizer over :data:`TINY_VOCAB_WORDS` (whitespace + punctuation split)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate(TINY_VOCAB_WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def tiny_loaded(
    family: str = "llama", n_layers: int = 3, d_model: int = 32, seed: int = 0, **overrides: Any
) -> Any:
    """A :class:`pseval.models.LoadedModel` around :func:`tiny_model` and :func:`tiny_tokenizer`."""
    from pseval.models.loading import wrap_model

    model = tiny_model(family, n_layers=n_layers, d_model=d_model, seed=seed, **overrides)
    return wrap_model(model, tiny_tokenizer(), name=f"tiny-{family}", device="cpu")


def random_batch(
    n: int = 3, t: int = 7, seed: int = 0, vocab: int = len(TINY_VOCAB_WORDS)
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``input_ids [n, t]`` (ids >= 4, no special tokens) and an all-ones attention mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(4, vocab, (n, t), generator=gen)
    return ids, torch.ones_like(ids)


def write_word_corpus(path: Any, n_docs: int, seed: int = 0) -> str:
    """A .txt corpus of ``n_docs`` random documents over the tiny vocabulary (no special tokens); returns its path."""
    import random
    from pathlib import Path

    words = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
    rng = random.Random(seed)
    docs = [" ".join(rng.choice(words) for _ in range(rng.randint(4, 20))) for _ in range(n_docs)]
    Path(path).write_text("\n".join(docs) + "\n", encoding="utf-8")
    return str(path)
