"""The neuron-basis baseline: top neuron = largest positive mlp.hook_post value at the target token."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from pseval.errors import ConfigError, ModelError
from pseval.evals.neuron_baseline import (
    neuron_baseline,
    neuron_baseline_metrics,
    neuron_hook_for,
    neuron_hook_name,
)
from pseval.metrics.ps_eval import ps_eval_metrics
from pseval.models.hooks import run_with_cache
from tests.helpers import tiny_loaded


@dataclass
class _Prompt:
    input_ids: list[int]
    target_index: int


@dataclass
class _Data:
    pair_index: list[tuple[int, int]]
    labels: np.ndarray
    acts: dict[str, torch.Tensor] = field(default_factory=dict)
    prompts: list[_Prompt] | None = None


# Four prompts, three neurons. Negative values (as SwiGLU produces) never count, whatever their size.
ACTS_PD = torch.tensor(
    [
        [0.5, 2.0, -1.0],  # top neuron 1
        [3.0, 1.0, -5.0],  # top neuron 0
        [-1.0, -2.0, -10.0],  # no positive neuron: no top neuron
        [0.1, 0.9, -7.0],  # top neuron 1 (not 2, despite |-7|)
    ]
)
PAIRS = [(0, 3), (0, 1), (1, 3), (2, 2), (0, 0)]
LABELS = np.array([1, 0, 1, 0, 0])


def test_neuron_hook_for() -> None:
    assert neuron_hook_for("blocks.5.hook_mlp_out") == "blocks.5.mlp.hook_post"
    assert neuron_hook_for("blocks.5.mlp.hook_post") == "blocks.5.mlp.hook_post"
    for other in (
        "blocks.5.hook_resid_post",
        "blocks.5.hook_attn_out",
        "blocks.5.hook_resid_pre",
        "nonsense",
    ):
        assert neuron_hook_for(other) is None
    assert neuron_hook_name(3) == "blocks.3.mlp.hook_post"


def test_metrics_on_a_hand_built_example() -> None:
    metrics = neuron_baseline_metrics(ACTS_PD, PAIRS, LABELS)
    # (0,3) same meaning, same neuron 1: TP; (0,1) different, 1 vs 0: TN; (1,3) same, 0 vs 1: FN;
    # (2,2) different, no active neuron: TN (and no-active); (0,0) different, same neuron: FP.
    assert (metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]) == (1, 1, 2, 1)
    assert metrics["n_pairs"] == 5 and metrics["n_pairs_no_active"] == 1
    assert metrics["accuracy"] == pytest.approx(3 / 5)
    assert metrics["specificity"] == pytest.approx(2 / 3)
    assert metrics["recall"] == pytest.approx(1 / 2)
    assert metrics["n_neurons"] == 3 and metrics["n_distinct_top_neurons"] == 2
    reference = ps_eval_metrics(LABELS, [1, 1, 0, -1, 1], [1, 0, 1, -1, 1]).model_dump()
    assert {k: metrics[k] for k in reference} == reference  # same keys and values as the runner's ps_eval


def test_metrics_reject_mismatched_inputs() -> None:
    with pytest.raises(ConfigError, match="labels"):
        neuron_baseline_metrics(ACTS_PD, PAIRS, LABELS[:3])
    with pytest.raises(ConfigError, match="shape"):
        neuron_baseline_metrics(ACTS_PD[0], PAIRS, LABELS)


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama", n_layers=3, d_model=32)


def _prompts() -> list[_Prompt]:
    return [
        _Prompt([2, 6, 28, 9, 6, 29], 2),
        _Prompt([2, 30, 11, 6, 28], 4),
        _Prompt([2, 6, 33, 32], 3),
        _Prompt([2, 34, 32, 14, 60], 2),
    ]


def _manual_acts(loaded: Any, prompts: list[_Prompt], hook: str) -> torch.Tensor:
    rows = []
    for prompt in prompts:
        ids = torch.tensor([prompt.input_ids])
        rows.append(
            run_with_cache(loaded.model, ids, torch.ones_like(ids), [hook])[hook][0, prompt.target_index]
        )
    return torch.stack(rows)


def test_neuron_baseline_uses_given_activations(loaded: Any) -> None:
    prompts = _prompts()
    hook = "blocks.1.mlp.hook_post"
    acts = _manual_acts(loaded, prompts, hook)
    assert acts.shape == (4, 64) and (acts < 0).any()  # SwiGLU: negative values exist
    pairs = [(0, 1), (2, 3), (0, 2)]
    labels = np.array([1, 0, 0])
    data = _Data(pair_index=pairs, labels=labels, acts={hook: acts})
    assert neuron_baseline(loaded, data, 1) == neuron_baseline_metrics(acts, pairs, labels)
    with pytest.raises(ConfigError, match=r"no blocks\.2\.mlp\.hook_post"):
        neuron_baseline(loaded, data, 2)
    with pytest.raises(ModelError, match=r"layers 0\.\.2"):
        neuron_baseline(loaded, data, 3)


def test_neuron_baseline_collects_from_prompts(loaded: Any, tmp_cache: Path) -> None:
    prompts = _prompts()
    pairs = [(0, 1), (2, 3), (0, 2)]
    labels = np.array([1, 0, 0])
    data = _Data(pair_index=pairs, labels=labels, prompts=prompts)
    expected = neuron_baseline_metrics(_manual_acts(loaded, prompts, "blocks.0.mlp.hook_post"), pairs, labels)
    assert neuron_baseline(loaded, data, 0) == expected
