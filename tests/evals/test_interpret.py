"""Corpus statistics of latents from the training activation cache, and the breakdown by firing frequency."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from pseval.activations.store import ActivationStore, load_cached_contexts
from pseval.data.corpus import special_token_mask
from pseval.errors import ConfigError
from pseval.evals.interpret import (
    MARK_CLOSE,
    MARK_OPEN,
    _decode_windows,
    corpus_latent_stats,
    frequency_breakdown,
)
from pseval.evals.schema import PairDetail
from pseval.models.hooks import run_with_cache
from pseval.sae.config import config_from_dict
from pseval.sae.model import SAE
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded, write_word_corpus

HOOK = "blocks.1.hook_resid_post"
WORDS = [w for w in TINY_VOCAB_WORDS if not w.startswith("[")]
BOS, EOS = 2, 3
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared"


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama", n_layers=3, d_model=32)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_word_corpus(tmp_path_factory.mktemp("corpus") / "docs.txt", n_docs=400)


def make_sae(architecture: str = "standard", d_sae: int = 64, seed: int = 0, **metadata: Any) -> SAE:
    fields: dict[str, Any] = {
        "architecture": architecture,
        "d_in": 32,
        "d_sae": d_sae,
        "hook_name": HOOK,
        "metadata": metadata,
    }
    if architecture == "topk":
        fields["k"] = 1  # 1 active latent of 64: codes sparse enough for the sparse path
    cfg = config_from_dict(fields)
    sae = SAE.create_random(cfg, seed=seed)
    with torch.no_grad():
        sae.b_enc[0] = -1e4  # latent 0 never fires
    return sae


def settings(tmp_path: Path, corpus_file: str, **overrides: Any) -> dict[str, Any]:
    return {"corpus": corpus_file, "context_size": 16, "cache_root": tmp_path / "acts", **overrides}


# ------------------------------------------------------------------------------------------------ store index


def test_every_cached_row_traces_back_to_its_token(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    store = ActivationStore(
        loaded,
        corpus=corpus_file,
        context_size=16,
        model_batch_size=4,
        cache_root=tmp_path,
        cache_dtype="float32",
    )
    folder = store.harvest([HOOK, "blocks.0.hook_resid_pre"], 150)[HOOK]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["format_version"] == 2 and manifest["contexts"]["file"] == "contexts.safetensors"
    contexts = load_cached_contexts(folder)
    assert contexts.input_ids_CT.dtype == contexts.context_N.dtype == contexts.position_N.dtype == torch.int32
    assert contexts.context_N.shape == (150,) and contexts.input_ids_CT.shape[1] == 16
    assert (
        manifest["contexts"]["n_contexts"]
        == contexts.input_ids_CT.shape[0]
        == int(contexts.context_N[-1]) + 1
    )
    ids_CT = contexts.input_ids_CT.long()
    tokens = ids_CT[contexts.context_N.long(), contexts.position_N.long()]
    assert not special_token_mask(tokens[None], loaded.tokenizer).any()  # rows are text positions only
    acts = run_with_cache(loaded.model, ids_CT, torch.ones_like(ids_CT), [HOOK])[HOOK]
    cached = torch.cat(list(store._iter_cached(folder, 150, 64)))
    torch.testing.assert_close(acts[contexts.context_N.long(), contexts.position_N.long()], cached)
    part = load_cached_contexts(folder, 20)  # a prefix reads only what it needs
    assert part.context_N.shape == (20,) and part.input_ids_CT.shape[0] == int(part.context_N[-1]) + 1


# ------------------------------------------------------------------------------------------------ top contexts


def fabricate_cache(
    loaded: Any, corpus_file: str, tmp_path: Path, n_rows: int, seed: int = 0
) -> tuple[Path, Any]:
    """Write a cache folder by hand (random activations and contexts) under the key the store looks up."""
    store = ActivationStore(loaded, **settings(tmp_path, corpus_file, cache_dtype="float16"))
    gen = torch.Generator().manual_seed(seed)
    contexts, rows = [], []
    while len(rows) < n_rows:
        ids = torch.randint(4, len(TINY_VOCAB_WORDS), (16,), generator=gen)
        ids[0] = BOS
        ids[int(torch.randint(3, 14, (1,), generator=gen))] = EOS  # a document boundary inside the context
        contexts.append(ids)
        rows += [(len(contexts) - 1, t) for t in range(16) if int(ids[t]) not in (BOS, EOS)]
    rows = rows[:n_rows]
    input_ids = torch.stack(contexts)[: rows[-1][0] + 1].to(torch.int32)
    acts = (torch.randn(n_rows, 32, generator=gen) * 2).to(torch.float16)
    folder = store.cache_path(HOOK, n_rows)
    folder.mkdir(parents=True)
    shards = []
    for i, start in enumerate(range(0, n_rows, 100)):
        name = f"shard_{i:05d}.safetensors"
        save_file({"acts": acts[start : start + 100].contiguous()}, str(folder / name))
        shards.append({"file": name, "n_rows": min(100, n_rows - start)})
    save_file(
        {"input_ids": input_ids, "row_index": torch.tensor(rows, dtype=torch.int32)},
        str(folder / "contexts.safetensors"),
    )
    manifest = {"cache_key": store.cache_key(HOOK), "n_tokens": n_rows, "hook_name": HOOK, "shards": shards}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder, (acts.float(), input_ids, rows)


def expected_text(ids: list[int], position: int, window: int) -> str:
    """The window by hand: words around the token, stopping at BOS/EOS, joined by spaces, token marked."""
    start = position
    while start > 0 and position - start < window and ids[start - 1] not in (BOS, EOS):
        start -= 1
    stop = position + 1
    while stop < len(ids) and stop - position - 1 < window and ids[stop] not in (BOS, EOS):
        stop += 1
    words = [TINY_VOCAB_WORDS[i] for i in ids[start:stop]]
    words[position - start] = f"{MARK_OPEN}{words[position - start]}{MARK_CLOSE}"
    return " ".join(words)


@pytest.mark.parametrize("architecture", ["standard", "topk"])  # dense codes, sparse codes
def test_top_contexts_are_the_true_top_n(
    loaded: Any, corpus_file: str, tmp_path: Path, architecture: str
) -> None:
    n_rows = 350
    folder, (acts_ND, input_ids, rows) = fabricate_cache(loaded, corpus_file, tmp_path, n_rows)
    sae = make_sae(architecture)
    latents = [0, 3, 17, 3, -1, 63]
    stats = corpus_latent_stats(
        loaded,
        sae,
        HOOK,
        latents,
        n_tokens=n_rows,
        top_n=5,
        window=4,
        chunk_rows=64,
        **settings(tmp_path, corpus_file),
    )
    assert stats.n_forward_passes == 0 and stats.cache_path == str(folder) and stats.n_tokens == n_rows
    assert list(stats.firing_frequency) == ["0", "3", "17", "63"]  # -1 (no latent) dropped, duplicates merged

    with torch.no_grad():
        feats_NF = sae.encode(acts_ND)
    freq_F = (feats_NF > 0).float().mean(0)
    for latent in (0, 3, 17, 63):
        assert stats.firing_frequency[str(latent)] == pytest.approx(float(freq_F[latent]))
        values, top_rows = feats_NF[:, latent].topk(5)
        expected = [(float(v), int(r)) for v, r in zip(values, top_rows, strict=True) if v > 0]
        got = stats.top_contexts[str(latent)]
        assert [c.activation for c in got] == pytest.approx([v for v, _ in expected], abs=1e-5)
        for context, (_, row) in zip(got, expected, strict=True):
            c, t = rows[row]
            assert (context.context_index, context.position) == (c, t)
            assert context.token == TINY_VOCAB_WORDS[int(input_ids[c, t])]
            assert context.text == expected_text(input_ids[c].tolist(), t, window=4)
    assert stats.top_contexts["0"] == [] and stats.firing_frequency["0"] == 0.0
    assert stats.frequency_all["n_latents"] == 64
    assert stats.frequency_all["dead_fraction"] == pytest.approx(float((freq_F == 0).float().mean()))
    assert stats.frequency_all["median"] == pytest.approx(float(freq_F.double().median()), abs=0.01)
    assert (
        stats.frequency_all["min"]
        <= stats.frequency_all["q10"]
        <= stats.frequency_all["q90"]
        <= stats.frequency_all["max"]
    )

    # a smaller request is served from the same cache (its first rows)
    small = corpus_latent_stats(
        loaded, sae, HOOK, [3], n_tokens=120, top_n=2, **settings(tmp_path, corpus_file)
    )
    assert small.n_forward_passes == 0
    values, top_rows = feats_NF[:120, 3].topk(2)
    firing = values[values > 0]  # a context where the latent is silent is never a top context
    assert firing.numel() >= 1
    assert [c.activation for c in small.top_contexts["3"]] == pytest.approx(firing.tolist(), abs=1e-5)


def test_the_trainer_cache_is_reused_and_a_missing_one_harvested_once(
    loaded: Any, corpus_file: str, tmp_path: Path
) -> None:
    # what the trainer does with its default cache settings: harvest through the store's batches()
    trainer_store = ActivationStore(loaded, **settings(tmp_path, corpus_file), model_batch_size=8)
    list(trainer_store.batches(HOOK, 64, 600))
    assert trainer_store.n_forward_passes > 0
    sae = make_sae()
    stats = corpus_latent_stats(loaded, sae, HOOK, [1, 2], n_tokens=500, **settings(tmp_path, corpus_file))
    assert stats.n_forward_passes == 0

    # settings recorded by a pseval-trained SAE are used for the cache key (here a float32 cache)
    other_hook = "blocks.0.hook_resid_post"
    trained = make_sae(
        train_config={
            "hook_name": other_hook,
            "corpus": corpus_file,
            "context_size": 16,
            "cache_dtype": "float32",
        }
    )
    first = corpus_latent_stats(
        loaded, trained, other_hook, [1], n_tokens=200, **settings(tmp_path, corpus_file)
    )
    assert (
        first.n_forward_passes > 0
        and json.loads((Path(first.cache_path) / "manifest.json").read_text())["dtype"] == "float32"
    )
    second = corpus_latent_stats(
        loaded, trained, other_hook, [1], n_tokens=200, **settings(tmp_path, corpus_file)
    )
    assert second.n_forward_passes == 0 and second.cache_path == first.cache_path
    assert second.top_contexts == first.top_contexts and second.firing_frequency == first.firing_frequency


def test_bad_arguments(loaded: Any, corpus_file: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="out of range"):
        corpus_latent_stats(loaded, make_sae(), HOOK, [64], n_tokens=10, **settings(tmp_path, corpus_file))
    with pytest.raises(ConfigError, match="positive"):
        corpus_latent_stats(loaded, make_sae(), HOOK, [1], n_tokens=0, **settings(tmp_path, corpus_file))


@pytest.mark.skipif(
    not (SHARED / "data" / "gpt2-tokenizer" / "vocab.json").is_file(), reason="no GPT-2 tokenizer"
)
def test_marker_with_a_byte_level_bpe_tokenizer() -> None:
    import transformers
    from transformers import GPT2TokenizerFast

    vocab, merges = (str(SHARED / "data" / "gpt2-tokenizer" / name) for name in ("vocab.json", "merges.txt"))
    if int(transformers.__version__.split(".")[0]) >= 5:
        tokenizer = GPT2TokenizerFast(vocab=vocab, merges=merges)
    else:  # pragma: no cover - transformers 4.x
        tokenizer = GPT2TokenizerFast(vocab_file=vocab, merges_file=merges)
    ids = tokenizer("He sat on the riverbank, watching the water.")["input_ids"]
    pieces = [tokenizer.decode([i]) for i in ids]
    target = pieces.index(" watching")
    out = _decode_windows(tokenizer, torch.tensor([ids], dtype=torch.int32), {7: (0, target)}, window=3)
    text, token = out[7]
    assert token == " watching"
    assert (
        text == f"riverbank, {MARK_OPEN}watching{MARK_CLOSE} the water."
    )  # the space stays outside the marker


# ------------------------------------------------------------------------------------------------ breakdown


def _detail(i: int, label: int, latent_1: int, latent_2: int) -> PairDetail:
    same = latent_1 == latent_2 and latent_1 != -1
    return PairDetail(
        id=f"p{i}", word="bank", pos="N", label=label, latent_1=latent_1, activation_1=1.0, latent_2=latent_2,
        activation_2=1.0, predicted_same=same, correct=same == (label == 1), jaccard=0.0, code_cosine=0.0,
    )  # fmt: skip


def test_frequency_breakdown_on_hand_built_rows() -> None:
    freq = {"1": 0.0, "2": 5e-4, "3": 0.05, "4": 1.0, "5": 0.2, "6": 1e-4}
    rows = [
        _detail(0, 1, 1, 1),  # [0, 0.0001): TP
        _detail(1, 0, 2, 2),  # 5e-4 is in [0.0001, 0.001): FP
        _detail(2, 0, 3, 7),  # [0.01, 0.1): TN
        _detail(3, 1, 4, 4),  # frequency 1 falls in the last, closed bin [0.1, 1]: TP
        _detail(4, 0, 5, 5),  # [0.1, 1]: FP
        _detail(5, 1, 6, 2),  # exactly 1e-4: lower edge of [0.0001, 0.001): FN
        _detail(6, 0, -1, 3),  # no active latent in context 1
        _detail(7, 1, 9, 9),  # latent 9 has no known frequency
    ]
    out = frequency_breakdown(rows, freq)
    assert list(out) == [
        "[0, 0.0001)", "[0.0001, 0.001)", "[0.001, 0.01)", "[0.01, 0.1)", "[0.1, 1]",
        "no active latent", "frequency unknown",
    ]  # fmt: skip
    assert out["[0, 0.0001)"]["n_pairs"] == 1 and out["[0, 0.0001)"]["tp"] == 1
    low = out["[0.0001, 0.001)"]
    assert (low["n_pairs"], low["fp"], low["fn"], low["accuracy"], low["specificity"]) == (2, 1, 1, 0.0, 0.0)
    assert out["[0.001, 0.01)"]["n_pairs"] == 0 and out["[0.001, 0.01)"]["accuracy"] is None
    assert out["[0.01, 0.1)"]["tn"] == 1 and out["[0.01, 0.1)"]["specificity"] == 1.0
    high = out["[0.1, 1]"]
    assert (high["n_pairs"], high["tp"], high["fp"], high["recall"], high["specificity"]) == (
        2,
        1,
        1,
        1.0,
        0.0,
    )
    assert (high["frequency_low"], high["frequency_high"]) == (0.1, 1.0)
    assert out["no active latent"]["n_pairs"] == 1 and out["no active latent"]["n_pairs_no_active"] == 1
    assert out["frequency unknown"]["n_pairs"] == 1
    assert sum(group["n_pairs"] for group in out.values()) == len(rows)

    # plain dicts work too, and integer keys in the frequency table
    as_dicts = [r.model_dump() for r in rows[:3]]
    coarse = frequency_breakdown(as_dicts, {1: 0.0, 2: 5e-4, 3: 0.05}, bins=(0, 1e-3, 1))
    assert [g["n_pairs"] for g in coarse.values()] == [2, 1]
    with pytest.raises(ConfigError, match="increasing"):
        frequency_breakdown(rows, freq, bins=(0, 1e-2, 1e-3))


def test_running_topk_equals_a_topk_over_all_rows() -> None:
    from pseval.evals.interpret import _merge_topk

    gen = torch.Generator().manual_seed(3)
    vals_NL = torch.relu(torch.randn(1000, 40, generator=gen) - 1.5)  # sparse, many zeros
    vals_NL[:, 5] = 0.0  # a column that never fires
    vals_NL[:2, 7] = 1.0  # a column that fires on fewer rows than k
    vals_NL[2:, 7] = 0.0
    best_val, best_row = torch.full((4, 40), -torch.inf), torch.full((4, 40), -1, dtype=torch.long)
    for start in range(0, 1000, 3):  # chunks smaller than k too
        _merge_topk(vals_NL[start : start + 3], start, best_val, best_row)
    expected_val, _ = vals_NL.topk(4, dim=0)
    torch.testing.assert_close(best_val, expected_val)
    active = best_val > 0
    torch.testing.assert_close(vals_NL.gather(0, best_row.clamp(min=0))[active], best_val[active])
