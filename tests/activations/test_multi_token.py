"""Multi-token target words: prompts, pooled activations (last / mean), cache keys and the result breakdown."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.activations import collect_activations
from pseval.activations.collect import prompts_digest
from pseval.data.datasets import load_dataset
from pseval.data.prompts import build_prompts
from pseval.evals.config import PSEvalConfig
from pseval.models.hooks import run_with_cache
from tests.helpers import TINY_VOCAB_WORDS, tiny_model

HOOK = "blocks.1.hook_resid_post"
SUFFIXES = ("##ing", "##er")
"""WordPiece continuations, so 'banking' = 'bank' + '##ing' and 'player' = 'play' + '##er'."""


def _wordpiece_tokenizer() -> Any:
    """The tiny vocabulary as WordPiece (ids < 128, so the tiny models read it) plus two suffixes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {word: i for i, word in enumerate([*TINY_VOCAB_WORDS, *SUFFIXES])}
    backend = Tokenizer(models.WordPiece(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.decoder = decoders.WordPiece()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]", bos_token="[BOS]", eos_token="[EOS]"
    )


@pytest.fixture(scope="module")
def loaded() -> Any:
    from pseval.models.loading import wrap_model

    return wrap_model(
        tiny_model("llama", seed=0), _wordpiece_tokenizer(), name="tiny-wordpiece", device="cpu"
    )


_PAIRS = [
    ("bank", "he sat on the bank", "money in the bank", 0),
    ("bank", "the bank was green", "the bank of the river", 1),
    ("banking", "the banking was slow", "money and banking", 0),
    ("banking", "he was banking money", "she was banking money", 1),
    ("player", "the player sat", "a player of the game", 1),
    ("player", "the player was fast", "the music player", 0),
]


@pytest.fixture(scope="module")
def dataset_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = []
    for i, (word, c1, c2, label) in enumerate(_PAIRS):
        s1, s2 = c1.index(word), c2.index(word)
        rows.append(
            {
                "id": f"mt-{i}",
                "word": word,
                "pos": "N",
                "context_1": c1,
                "context_2": c2,
                "span_1": [s1, s1 + len(word)],
                "span_2": [s2, s2 + len(word)],
                "label": label,
            }
        )
    path = tmp_path_factory.mktemp("mt") / "pairs.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def _prompts(loaded: Any, path: Path, policy: str, position: str = "template") -> Any:
    ds = load_dataset(loaded.tokenizer, name=str(path), split="all", balance=False, multi_token=policy)  # type: ignore[arg-type]
    return ds, build_prompts(loaded.tokenizer, ds, position=position, multi_token=policy)  # type: ignore[arg-type]


def test_tokenizer_splits_the_multi_token_words(loaded: Any) -> None:
    ids = loaded.tokenizer(" banking", add_special_tokens=False)["input_ids"]
    assert [loaded.tokenizer.convert_ids_to_tokens(i) for i in ids] == ["bank", "##ing"]


def test_drop_keeps_only_single_token_words(loaded: Any, dataset_file: Path) -> None:
    ds, prompt_set = _prompts(loaded, dataset_file, "drop")
    assert [p.word for p in ds.pairs] == ["bank", "bank"]
    assert ds.stats.dropped["multi_token_word"] == 4
    assert all(p.target_indices == [] for p in prompt_set.prompts)


def test_prompt_target_tokens_per_policy(loaded: Any, dataset_file: Path) -> None:
    """'the banking was slow The banking means': tokens the(0) bank(1) ##ing(2) was slow The bank(6) ##ing(7)."""
    for policy, pooled in (("last", []), ("mean", [6, 7])):
        ds, prompt_set = _prompts(loaded, dataset_file, policy)
        assert ds.word_n_tokens == [1, 1, 2, 2, 2, 2]
        first = prompt_set.prompts[prompt_set.pair_index[2][0]]
        assert first.text == "the banking was slow The banking means"
        assert first.target_index == 7 and first.target_indices == pooled
        assert first.target_token == ("banking" if policy == "mean" else "##ing")
        single = prompt_set.prompts[prompt_set.pair_index[0][0]]
        assert single.target_indices == []
    _, in_context = _prompts(loaded, dataset_file, "mean", position="context")
    assert in_context.prompts[in_context.pair_index[2][0]].target_indices == [1, 2]


def test_pooled_values_are_hand_checked(loaded: Any, dataset_file: Path) -> None:
    """'mean' is the mean of the sub-tokens' vectors, 'last' the last sub-token's, single words unchanged."""
    results = {}
    for policy in ("drop", "last", "mean"):
        ds, prompt_set = _prompts(loaded, dataset_file, policy)
        # batch_size=1: no padding, so rows can be compared bit for bit across policies (batches of other
        # shapes change the last float bits of a CPU matmul)
        acts = collect_activations(loaded, prompt_set.prompts, [HOOK], batch_size=1, cache=False).acts[HOOK]
        results[policy] = (ds, prompt_set, acts)
    ds, prompt_set, mean_acts = results["mean"]
    _, last_set, last_acts = results["last"]
    for (i, j), (li, lj) in zip(prompt_set.pair_index, last_set.pair_index, strict=True):
        for pi, pl in ((i, li), (j, lj)):
            prompt = prompt_set.prompts[pi]
            ids = torch.tensor([prompt.input_ids])
            per_token_TD = run_with_cache(loaded.model, ids, torch.ones_like(ids), [HOOK])[HOOK][0].float()
            if prompt.target_indices:
                a, b = prompt.target_indices
                assert b == a + 1 == prompt.target_index
                expected = (per_token_TD[a] + per_token_TD[b]) / 2
            else:
                expected = per_token_TD[prompt.target_index]
            torch.testing.assert_close(mean_acts[pi], expected, rtol=0, atol=1e-6)
            torch.testing.assert_close(last_acts[pl], per_token_TD[prompt.target_index], rtol=0, atol=1e-6)
    # single-token pairs: the same vectors under every policy, bit for bit
    _, drop_set, drop_acts = results["drop"]
    for k in range(2):
        for side in range(2):
            d = drop_acts[drop_set.pair_index[k][side]]
            assert torch.equal(d, mean_acts[prompt_set.pair_index[k][side]])
            assert torch.equal(d, last_acts[last_set.pair_index[k][side]])
    # padded batches give the same pooled rows up to float rounding
    batched = collect_activations(loaded, prompt_set.prompts, [HOOK], batch_size=4, cache=False).acts[HOOK]
    torch.testing.assert_close(batched, mean_acts, rtol=0, atol=1e-5)
    # pooling changes the multi-token rows
    assert not torch.allclose(mean_acts[prompt_set.pair_index[2][0]], last_acts[last_set.pair_index[2][0]])


def test_cache_keys_include_the_policy(loaded: Any, dataset_file: Path) -> None:
    _, last_set = _prompts(loaded, dataset_file, "last")
    _, mean_set = _prompts(loaded, dataset_file, "mean")
    assert prompts_digest(last_set.prompts) != prompts_digest(mean_set.prompts)
    keys = {PSEvalConfig(multi_token=p).cache_key()["multi_token"] for p in ("drop", "last", "mean")}  # type: ignore[arg-type]
    assert keys == {"drop", "last", "mean"}


def test_mean_cache_round_trip(loaded: Any, dataset_file: Path, tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path))
    _, mean_set = _prompts(loaded, dataset_file, "mean")
    first = collect_activations(loaded, mean_set.prompts, [HOOK], cache=True)
    again = collect_activations(loaded, mean_set.prompts, [HOOK], cache=True)
    assert first.n_forward_passes > 0 and again.n_forward_passes == 0
    assert torch.equal(first.acts[HOOK], again.acts[HOOK])


def test_results_report_single_and_multi_token_pairs_apart(
    loaded: Any, dataset_file: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    from pseval.evals.runner import evaluate
    from pseval.sae.config import config_from_dict
    from pseval.sae.model import SAE

    monkeypatch.setenv("PSEVAL_CACHE", str(tmp_path))
    sae = SAE.create_random(
        config_from_dict({"architecture": "standard", "d_in": 32, "d_sae": 64, "hook_name": HOOK}), seed=0
    )
    common = {
        "dataset": str(dataset_file),
        "split": "all",
        "balance": False,
        "bootstrap_resamples": 0,
        "baselines": False,
        "interpret_tokens": 0,
        "batch_size": 1,  # same float rounding in both runs (see test_pooled_values_are_hand_checked)
    }
    by_policy = {}
    for policy in ("drop", "mean"):
        config = PSEvalConfig(model_name="tiny-wordpiece", multi_token=policy, **common)  # type: ignore[arg-type]
        (result,) = evaluate(loaded, [("sae", sae)], config=config, output_folder=None)
        by_policy[policy] = result
    drop, mean = by_policy["drop"], by_policy["mean"]
    assert "by_token_count" not in drop.eval_result_unstructured
    groups = mean.eval_result_unstructured["by_token_count"]
    assert groups["single"]["n_pairs"] == 2 and groups["multi"]["n_pairs"] == 4
    # the single-token group is the paper's setting: identical to the drop run
    assert groups["single"] == drop.eval_result_metrics["ps_eval"]
    assert mean.eval_result_metrics["ps_eval"]["n_pairs"] == 6
    intervals = mean.eval_result_unstructured["by_token_count_ci"]
    assert set(intervals) == {"single", "multi"} and "specificity_low" in intervals["multi"]
