"""Batched activation collection: values, order, padding, deduplication and the on-disk cache."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.activations import collect as collect_mod
from pseval.activations import collect_activations
from pseval.errors import DataError, ModelError
from pseval.models.hooks import run_with_cache
from tests.helpers import TINY_VOCAB_WORDS, tiny_loaded

HOOKS = ["blocks.1.hook_resid_post", "blocks.0.hook_mlp_out"]


@dataclass(frozen=True)
class P:
    input_ids: list[int]
    target_index: int


def make_prompts(n: int = 11, seed: int = 0) -> list[P]:
    rng = random.Random(seed)
    prompts = []
    for _ in range(n):
        length = rng.randint(2, 12)
        ids = [2] + [rng.randrange(4, len(TINY_VOCAB_WORDS)) for _ in range(length - 1)]
        prompts.append(P(ids, rng.randrange(length)))
    return prompts


def reference(loaded: Any, prompts: list[P], hooks: list[str]) -> dict[str, torch.Tensor]:
    """One unpadded forward per prompt."""
    rows: dict[str, list[torch.Tensor]] = {h: [] for h in hooks}
    for p in prompts:
        ids = torch.tensor([p.input_ids])
        acts = run_with_cache(loaded.model, ids, torch.ones_like(ids), hooks)
        for h in hooks:
            rows[h].append(acts[h][0, p.target_index])
    return {h: torch.stack(v) for h, v in rows.items()}


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama")


@pytest.mark.parametrize("family", ["llama", "gemma2", "gpt2", "gpt_neox", "bert"])
def test_matches_unbatched_forward(family: str) -> None:
    model = tiny_loaded(family)
    prompts = make_prompts()
    hooks = ["blocks.1.hook_resid_post", "blocks.0.hook_resid_pre"]
    result = collect_activations(model, prompts, hooks, batch_size=4, cache=False)
    expected = reference(model, prompts, hooks)
    assert list(result.acts) == hooks
    for h in hooks:
        assert result.acts[h].dtype == torch.float32 and result.acts[h].device.type == "cpu"
        assert result.acts[h].shape == (len(prompts), 32)
        torch.testing.assert_close(result.acts[h], expected[h], atol=1e-5, rtol=0)
    assert result.n_forward_passes == math.ceil(len(prompts) / 4)
    assert result.cache_paths == {} and result.cache_path is None


def test_left_padding_gives_the_same_vectors(loaded: Any) -> None:
    prompts = make_prompts(n=6, seed=3)
    result = collect_activations(loaded, prompts, HOOKS, batch_size=8, cache=False)
    width = max(len(p.input_ids) for p in prompts)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p.input_ids) :] = torch.tensor(p.input_ids)
        mask[i, width - len(p.input_ids) :] = 1
    left = run_with_cache(loaded.model, ids, mask, HOOKS)
    for h in HOOKS:
        rows = torch.stack(
            [left[h][i, width - len(p.input_ids) + p.target_index] for i, p in enumerate(prompts)]
        )
        torch.testing.assert_close(rows, result.acts[h], atol=1e-5, rtol=0)


def test_shared_sequences_run_once(loaded: Any) -> None:
    base = make_prompts(n=4, seed=5)
    prompts = [*base, P(base[0].input_ids, 0), P(base[2].input_ids, -1), base[1]]
    result = collect_activations(loaded, prompts, HOOKS, batch_size=2, cache=False)
    assert result.n_sequences_run == 4
    assert result.n_forward_passes == 2
    assert result.n_tokens_run == sum(len(p.input_ids) for p in base)
    fixed = [P(p.input_ids, p.target_index % len(p.input_ids)) for p in prompts]
    expected = reference(loaded, fixed, HOOKS)
    for h in HOOKS:
        torch.testing.assert_close(result.acts[h], expected[h], atol=1e-5, rtol=0)


def test_cache_hit_does_no_forward(loaded: Any, tmp_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = collect_mod.run_with_cache
    prompts = make_prompts()
    key = {"dataset": "wic", "template": "t", "position": "template", "bos": True}
    first = collect_activations(loaded, prompts, HOOKS, cache_key=key)
    assert first.n_forward_passes > 0
    assert set(first.cache_paths) == set(HOOKS)
    assert all(p.is_file() and p.parent == tmp_cache / "activations" for p in first.cache_paths.values())

    def no_forward(*_a: Any, **_k: Any) -> None:
        raise AssertionError("forward pass on a cached rerun")

    monkeypatch.setattr(collect_mod, "run_with_cache", no_forward)
    second = collect_activations(loaded, prompts, list(reversed(HOOKS)), cache_key=key)
    assert second.n_forward_passes == 0
    assert list(second.acts) == list(reversed(HOOKS))
    for h in HOOKS:
        assert torch.equal(second.acts[h], first.acts[h])

    # a new hook runs alone; a different key or different prompts miss the cache
    calls: list[list[str]] = []

    def spy(model: Any, ids: Any, mask: Any, names: list[str]) -> Any:
        calls.append(list(names))
        return real(model, ids, mask, names)

    monkeypatch.setattr(collect_mod, "run_with_cache", spy)
    third = collect_activations(loaded, prompts, [*HOOKS, "blocks.2.hook_attn_out"], cache_key=key)
    assert third.n_forward_passes > 0 and all(c == ["blocks.2.hook_attn_out"] for c in calls)
    assert (
        collect_activations(loaded, prompts, HOOKS[:1], cache_key={**key, "bos": False}).n_forward_passes > 0
    )
    assert collect_activations(loaded, prompts[:-1], HOOKS[:1], cache_key=key).n_forward_passes > 0
    assert collect_activations(loaded, prompts, HOOKS[:1], cache_key=key).n_forward_passes == 0


def test_cache_disabled_writes_nothing(loaded: Any, tmp_cache: Path) -> None:
    collect_activations(loaded, make_prompts(), HOOKS, cache=False)
    assert not (tmp_cache / "activations").exists() or not any((tmp_cache / "activations").iterdir())


def test_corrupt_cache_is_recomputed(loaded: Any, tmp_cache: Path) -> None:
    prompts = make_prompts()
    first = collect_activations(loaded, prompts, HOOKS[:1])
    path = first.cache_paths[HOOKS[0]]
    path.write_bytes(b"not a safetensors file")
    again = collect_activations(loaded, prompts, HOOKS[:1])
    assert again.n_forward_passes > 0
    torch.testing.assert_close(again.acts[HOOKS[0]], first.acts[HOOKS[0]])
    assert collect_activations(loaded, prompts, HOOKS[:1]).n_forward_passes == 0


def test_bad_hook_fails_before_any_forward(loaded: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_forward(*_a: Any, **_k: Any) -> None:
        raise AssertionError("forward pass before validation")

    monkeypatch.setattr(collect_mod, "run_with_cache", no_forward)
    with pytest.raises(ModelError, match="unknown hook name"):
        collect_activations(
            loaded, make_prompts(), ["blocks.0.hook_resid_post", "blocks.0.hook_nope"], cache=False
        )
    with pytest.raises(ModelError, match=r"layers 0\.\.2"):
        collect_activations(loaded, make_prompts(), ["blocks.7.hook_resid_post"], cache=False)


def test_bad_prompts(loaded: Any) -> None:
    with pytest.raises(DataError, match="target_index 5"):
        collect_activations(loaded, [P([2, 5, 6], 5)], HOOKS, cache=False)
    with pytest.raises(DataError, match="no tokens"):
        collect_activations(loaded, [P([], 0)], HOOKS, cache=False)
    empty = collect_activations(loaded, [], HOOKS, cache=False)
    assert empty.n_forward_passes == 0 and empty.acts[HOOKS[0]].shape == (0, 32)


def test_accepts_data_prompts(loaded: Any) -> None:
    prompts_mod = pytest.importorskip("pseval.data.prompts")
    text = "the bank of the river"
    ids = loaded.tokenizer(text).input_ids
    prompt = prompts_mod.Prompt(text=text, input_ids=ids, target_index=1, target_token="bank")
    result = collect_activations(loaded, [prompt], HOOKS, cache=False)
    expected = reference(loaded, [P(ids, 1)], HOOKS)
    torch.testing.assert_close(result.acts[HOOKS[0]], expected[HOOKS[0]], atol=1e-5, rtol=0)
