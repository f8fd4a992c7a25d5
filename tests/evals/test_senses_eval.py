"""Sense retrieval inside scoring (block-wise Gram entries equal the dense codes) and through the CLI."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import pseval.sae.lazy as lazy_module
from pseval.cli import app
from pseval.data.senses import SenseItem, SenseSet, SenseStats
from pseval.evals.config import PSEvalConfig
from pseval.evals.random_control import control_centre
from pseval.evals.schema import PSEvalResult
from pseval.evals.scoring import PromptActivations, encode_all, score_sae
from pseval.evals.senses import ANCHORS_KEY
from pseval.metrics.sense_retrieval import anchor_outcomes
from pseval.metrics.threshold_free import topk_jaccard
from pseval.sae.config import config_from_dict
from pseval.sae.lazy import InMemoryBlocks
from pseval.sae.model import SAE
from tests.evals.conftest import make_sae
from tests.helpers import tiny_loaded

D_IN, HOOK = 32, "blocks.1.hook_resid_post"


def _sense_data(seed: int = 0) -> PromptActivations:
    """Two lemmas over 12 prompts; sense items point at prompts (one prompt shared by two items)."""
    gen = torch.Generator().manual_seed(seed)
    acts = torch.randn(12, D_IN, generator=gen) + 1.0  # an offset the centred cosine removes
    layout = [("bank", "a", 0), ("bank", "a", 1), ("bank", "b", 2), ("bank", "b", 3), ("bank", "c", 4)]
    layout += [("bat", "x", 5), ("bat", "x", 6), ("bat", "x", 7), ("bat", "y", 8), ("bat", "y", 8)]
    items = [
        SenseItem(id=f"i{n}", lemma=w, pos="N", sense=s, context=f"{w} {n}", span=(0, len(w)))
        for n, (w, s, _) in enumerate(layout)
    ]
    senses = SenseSet(source="test", items=items, different=None, stats=SenseStats(n_raw=len(items)))
    pairs_idx = [(i, i + 6) for i in range(6)]
    pairs = [
        SimpleNamespace(
            id=f"p{i}", word="w", pos="N", context_1="a", context_2="b", span_1=[0, 1], span_2=[0, 1]
        )
        for i in range(6)
    ]
    return PromptActivations(
        {HOOK: acts},
        pairs_idx,
        np.array([i % 2 for i in range(6)]),
        pairs,
        n_forward_passes=0,
        senses=senses,
        item_index=[p for _, _, p in layout],
    )


def _expected(sim_of: Any, data: PromptActivations) -> dict[str, tuple[float, str, float]]:
    """Per anchor id: (AUROC, nearest id, 1-NN correctness) recomputed from a full similarity function."""
    assert data.senses is not None
    out = {}
    for group in data.senses.groups():
        prompts = [data.item_index[i] for i in group.items]
        sim = np.array([[sim_of(a, b) for b in prompts] for a in prompts], dtype=np.float64)
        for a, auroc, nn, correct in anchor_outcomes(sim, group.relation_GG):
            out[data.senses.items[group.items[a]].id] = (
                auroc,
                data.senses.items[group.items[nn]].id,
                correct,
            )
    return out


def _got(rows: list[Any], name: str) -> dict[str, tuple[float, str, float]]:
    return {r.id: (r.scores[name].auroc, r.scores[name].nn_id, r.scores[name].nn_correct) for r in rows}


@pytest.mark.parametrize("architecture", ["topk", "standard"])
def test_blockwise_gram_equals_dense_codes(architecture: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lazy_module, "block_latents", lambda n, d_sae, budget=0: 16)  # 5 blocks of 80
    fields: dict[str, Any] = {"architecture": architecture, "d_in": D_IN, "d_sae": 80, "hook_name": HOOK}
    if architecture == "topk":
        fields["k"] = 6
    sae = SAE.create_random(config_from_dict(fields), seed=1, random_biases=True)
    data = _sense_data()
    config = PSEvalConfig(bootstrap_resamples=200, interpret_tokens=0, logit_lens_tokens=0, topk_overlap_k=4)
    categories, _, unstructured = score_sae(
        tiny_loaded(d_model=D_IN), sae, HOOK, data, config, held_out=data, baselines_by_hook={}
    )
    rows = unstructured[ANCHORS_KEY]
    acts = data.acts[HOOK]
    # The random control is the untrained SAE of the same config, its input centred as the SAE's (here by the
    # SAE's b_dec, which the SAE subtracts from its input).
    centre_D, _ = control_centre(InMemoryBlocks(sae), acts)
    control = SAE.create_random(sae.cfg.model_copy(update={"apply_b_dec_to_input": True}), seed=config.seed)
    with torch.no_grad():
        control.b_dec.copy_(centre_D)
    for name, model in (("sae", sae), ("random_sae", control)):
        codes = encode_all(model, acts)
        cos = torch.nn.functional.cosine_similarity(codes[:, None], codes[None], dim=-1).double()
        want = _expected(lambda a, b, c=cos: float(c[a, b]), data)
        got = _got(rows, f"{name}_cosine")
        assert got.keys() == want.keys()
        for key in want:
            assert got[key][0] == pytest.approx(want[key][0]) and got[key][2] == pytest.approx(want[key][2])
        jac = lambda a, b, c=codes: float(topk_jaccard(c[[a]], c[[b]], 4)[0])  # noqa: E731
        assert _got(rows, f"{name}_jaccard") == _expected(jac, data)
    centred = acts - acts[sorted(set(data.item_index))].mean(0)
    cen = torch.nn.functional.cosine_similarity(centred[:, None], centred[None], dim=-1).double()
    want = _expected(lambda a, b: float(cen[a, b]), data)
    assert {k: v[0] for k, v in _got(rows, "dense_centred_cosine").items()} == pytest.approx(
        {k: v[0] for k, v in want.items()}
    )
    row = categories["sense_retrieval"]
    # bank: 'a' x2 and 'b' x2 are anchors ('c' only a negative); bat: 'x' x3 and 'y' x2 (one shared prompt).
    assert (row["n_lemmas"], row["n_anchors"], row["n_items"]) == (2, 9, 10)
    assert row["mean_chance"] == pytest.approx(((1 / 4) * 4 / 4 + (2 / 4 * 3 + 1 / 4 * 2) / 5) / 2)
    # Two items of one prompt have similarity 1 to each other: bat's 'y' anchors find each other.
    assert all(r.scores["dense_cosine"].nn_correct == 1.0 for r in rows if r.sense == "y")


# --------------------------------------------------------------------------------------------------
# Through the CLI
# --------------------------------------------------------------------------------------------------

_ITEMS = [
    ("bank", "river", "he sat on the bank of the river"),
    ("bank", "river", "the bank was by the water"),
    ("bank", "river", "the river bank was green"),
    ("bank", "money", "money in the bank"),
    ("bank", "money", "the bank was fair with the money"),
    ("bank", "row", "a bank of light"),
    ("play", "game", "they play the game"),
    ("play", "game", "we play the game at night"),
    ("play", "music", "they play music"),
    ("bark", "dog", "the dog bark was fast"),
    ("bark", "tree", "the tree bark was green"),
]


@pytest.fixture
def senses_file(tmp_path: Path) -> Path:
    rows = []
    for split in ("test", "dev"):
        for n, (word, sense, text) in enumerate(_ITEMS):
            start = f" {text} ".index(f" {word} ")
            rows.append(
                {
                    "id": f"{split}-{n}",
                    "lemma": word,
                    "pos": "N",
                    "sense": f"{word}.{sense}",
                    "context": text,
                    "span": [start, start + len(word)],
                    "split": split,
                }
            )
    path = tmp_path / "tiny_senses.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n", encoding="utf-8")
    return path


def test_cli_prints_sense_retrieval_and_rows_recompute_it(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, senses_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(senses_file), "--sae", str(sae)]
    result = CliRunner().invoke(app, [*args, "--output-folder", str(out), "--bootstrap", "200"])
    assert result.exit_code == 0, result.output
    text = result.output
    for needle in (
        "Within-lemma sense retrieval",
        "2 lemmas, 7 anchors",
        "1-NN chance",
        "random SAE · code cosine",
    ):
        assert needle in text
    assert "dense · centred cosine" in text and "SAE − random SAE (cosine)" in text
    stored = PSEvalResult.model_validate_json((out / "ps_eval" / "sae_eval_results.json").read_text())
    row = stored.eval_result_metrics["sense_retrieval"]
    anchors = stored.sense_retrieval_details
    assert len(anchors) == row["n_anchors"] == 7
    for name in ("sae_cosine", "random_sae_cosine", "dense_centred_cosine", "sae_jaccard"):
        for metric, field in (("auroc", "auroc"), ("nn_accuracy", "nn_correct")):
            per_lemma: dict[str, list[float]] = defaultdict(list)
            for a in anchors:
                per_lemma[a.lemma].append(getattr(a.scores[name], field))
            macro = float(np.mean([np.mean(v) for v in per_lemma.values()]))
            assert row[f"{name}_{metric}"] == pytest.approx(macro, abs=1e-12), (name, metric)
            low, high = row[f"{name}_{metric}_low"], row[f"{name}_{metric}_high"]
            assert low <= row[f"{name}_{metric}"] <= high
    diffs = [a.scores["sae_cosine"].auroc - a.scores["random_sae_cosine"].auroc for a in anchors]
    by_lemma = defaultdict(list)
    for a, d in zip(anchors, diffs, strict=True):
        by_lemma[a.lemma].append(d)
    assert row["sae_cosine_minus_random_sae_cosine_auroc"] == pytest.approx(
        np.mean([np.mean(v) for v in by_lemma.values()])
    )
    first = anchors[0]
    assert first.lemma == "bank" and first.positive_ids == ["test-1", "test-2"]
    assert first.negative_ids == ["test-3", "test-4", "test-5"] and first.chance == pytest.approx(2 / 5)
    # The PS-Eval pairs are pairs of the same items: all 3 + 1 + 1 same-sense pairs, as many different.
    assert stored.eval_result_metrics["ps_eval"]["n_pairs"] == 10

    rerun = CliRunner().invoke(app, [*args, "--output-folder", str(out), "--bootstrap", "200"])
    assert rerun.exit_code == 0 and "skip sae" in rerun.output


def test_unknown_split_of_a_senses_file_is_one_line(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, senses_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "topk", HOOK, seed=3)
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(senses_file), "--sae", str(sae)]
    result = CliRunner().invoke(app, [*args, "--split", "train", "--output-folder", str(tmp_path / "r")])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "--split" in result.output


def test_pair_dataset_gets_sense_retrieval_from_its_labels(
    tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path
) -> None:
    sae = make_sae(tmp_path / "sae", "standard", HOOK, seed=4)
    out = tmp_path / "results"
    args = ["eval", "--model", str(tiny_model_dir), "--dataset", str(tiny_dataset_file), "--sae", str(sae)]
    result = CliRunner().invoke(
        app, [*args, "--no-balance", "--output-folder", str(out), "--bootstrap", "200"]
    )
    assert result.exit_code == 0, result.output
    stored = PSEvalResult.model_validate_json((out / "ps_eval" / "sae_eval_results.json").read_text())
    # bank: A~B and A!~C make A and B anchors; play likewise; other words have one label only.
    row = stored.eval_result_metrics["sense_retrieval"]
    assert (row["n_lemmas"], row["n_anchors"]) == (2, 4)
    assert {a.lemma for a in stored.sense_retrieval_details} == {"bank", "play"}
    assert all(a.chance == 0.5 for a in stored.sense_retrieval_details)
