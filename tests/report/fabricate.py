"""Fabricated PS-Eval results folders for the report tests (no model is run).

The numbers follow the paper's qualitative findings so the figures look like real ones: specificity
grows with the expansion ratio and with depth, the attention output separates meanings best, recall
falls as specificity rises, TopK/JumpReLU have a better MSE–L0 trade-off but no better specificity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pseval._io import write_json_atomic
from pseval.evals.config import PSEvalConfig
from pseval.evals.schema import EVAL_TYPE_ID, PairDetail, PSEvalResult
from pseval.metrics.ps_eval import METRIC_NAMES, metric_arrays, ps_eval_metrics

WORDS: list[tuple[str, str]] = [
    ("bank", "N"), ("bark", "V"), ("play", "V"), ("light", "N"), ("spring", "N"), ("plant", "N"),
    ("match", "N"), ("fire", "V"), ("date", "N"), ("party", "N"), ("run", "V"), ("bat", "N"),
    ("fair", "N"), ("rose", "N"), ("stick", "V"), ("coil", "N"), ("season", "N"), ("book", "V"),
]  # fmt: skip

SENTENCES: list[str] = [
    "They walked along the {w} at dusk.",
    "She said the {w} was nothing like last year's.",
    "Nobody expected the {w} to matter that much.",
    'He wrote "{w}" on a card & left it <there>.',
    "A quiet {w} can change a whole afternoon.",
    "The report about the {w} ended with </script><b>bold</b> claims.",
]
TOKENS: list[str] = [" river", " money", " shore", " loan", " tree", " dog", " game", " music", " lamp",
                     " weight", " season", " flower", " factory", " grow", " water", " price"]  # fmt: skip


@dataclass
class FakeSAE:
    """One fabricated SAE result."""

    architecture: str
    expansion: int
    layer: int
    kind: str
    d_in: int = 576
    standard: bool = True
    contexts: bool = False
    top_contexts: bool = False
    baselines: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def hook(self) -> str:
        return f"blocks.{self.layer}.hook_{self.kind}"

    @property
    def name(self) -> str:
        return f"{self.architecture}_x{self.expansion}_L{self.layer}_{self.kind}"


def default_saes() -> list[FakeSAE]:
    """A sweep: 3 architectures × 5 expansion ratios at one hook, plus a layer × hook-kind grid."""
    saes = [
        FakeSAE(
            arch,
            exp,
            6,
            "resid_post",
            standard=not (arch == "jumprelu" and exp == 4),
            contexts=(arch == "topk"),
            top_contexts=(arch == "topk" and exp == 16),
        )
        for arch in ("standard", "topk", "jumprelu")
        for exp in (4, 8, 16, 32, 64)
    ]
    saes += [
        FakeSAE("topk", 16, layer, kind, standard=False, contexts=True, baselines=(layer != 0))
        for layer in (0, 3, 9)
        for kind in ("resid_post", "attn_out", "mlp_out")
    ]
    saes += [FakeSAE("topk", 16, 6, kind, standard=False) for kind in ("attn_out", "mlp_out")]
    return saes


def _pairs(n_pairs: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n_pairs):
        word, pos = WORDS[(i // 2) % len(WORDS)]
        s1 = SENTENCES[i % len(SENTENCES)]
        s2 = SENTENCES[(i * 7 + 3) % len(SENTENCES)]
        c1, c2 = s1.format(w=word), s2.format(w=word)
        rows.append(
            {
                "id": f"test-{i:04d}",
                "word": word,
                "pos": pos,
                "label": i % 2,
                "context_1": c1,
                "context_2": c2,
                "span_1": [c1.index(word), c1.index(word) + len(word)],
                "span_2": [c2.index(word), c2.index(word) + len(word)],
            }
        )
    return rows


def _targets(sae: FakeSAE) -> tuple[float, float, float]:
    """Target specificity, recall and no-active rate of an SAE."""
    steps = math.log2(sae.expansion / 4)
    spec = 0.18 + 0.07 * steps + 0.02 * sae.layer + {"attn_out": 0.18, "mlp_out": -0.05}.get(sae.kind, 0.0)
    spec -= {"topk": 0.03, "jumprelu": 0.01}.get(sae.architecture, 0.0)
    recall = 0.92 - 0.06 * steps - 0.015 * sae.layer
    no_active = 0.06 if sae.architecture == "jumprelu" else 0.0
    return min(max(spec, 0.02), 0.95), min(max(recall, 0.05), 0.98), no_active


def _bootstrap(labels: np.ndarray, same: np.ndarray, seed: int) -> dict[str, float | None]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(labels), size=(200, len(labels)))
    values = metric_arrays(labels[idx], same[idx])
    out: dict[str, float | None] = {}
    for name in METRIC_NAMES:
        v = values[name][~np.isnan(values[name])]
        out[f"{name}_low"] = float(np.percentile(v, 2.5)) if v.size else None
        out[f"{name}_high"] = float(np.percentile(v, 97.5)) if v.size else None
    return out


def fake_result(sae: FakeSAE, n_pairs: int, seed: int, model: str = "smollm2-135m") -> PSEvalResult:
    """One realistic :class:`PSEvalResult` for ``sae`` on ``n_pairs`` fabricated pairs."""
    rng = np.random.default_rng(seed)
    spec, recall, no_active = _targets(sae)
    d_sae = sae.d_in * sae.expansion
    word_latent = {word: int(rng.integers(0, d_sae)) for word, _ in WORDS}
    details: list[PairDetail] = []
    for pair in _pairs(n_pairs):
        base = word_latent[pair["word"]]
        l1 = base
        if pair["label"] == 1:
            l2 = base if rng.random() < recall else int(rng.integers(0, d_sae))
        else:
            l2 = int(rng.integers(0, d_sae)) if rng.random() < spec else base
        a1, a2 = float(rng.gamma(2.0, 2.0)), float(rng.gamma(2.0, 2.0))
        if rng.random() < no_active:
            l2, a2 = -1, 0.0
        same = l1 == l2 and l1 != -1
        extra: dict[str, Any] = {}
        if sae.contexts:
            extra = {k: pair[k] for k in ("context_1", "context_2", "span_1", "span_2")}
        details.append(
            PairDetail(
                id=pair["id"],
                word=pair["word"],
                pos=pair["pos"],
                label=pair["label"],
                latent_1=l1,
                activation_1=round(a1, 6),
                latent_2=l2,
                activation_2=round(a2, 6),
                predicted_same=same,
                correct=same == (pair["label"] == 1),
                jaccard=round(float(rng.random()), 6),
                code_cosine=round(float(rng.random()), 6),
                **extra,
            )
        )
    labels = np.array([d.label for d in details])
    same_arr = np.array([d.predicted_same for d in details])
    metrics = ps_eval_metrics(labels, [d.latent_1 for d in details], [d.latent_2 for d in details])
    categories: dict[str, dict[str, Any]] = {
        "ps_eval": metrics.model_dump(),
        "ps_eval_ci": _bootstrap(labels, same_arr, seed) | {"confidence_level": 0.95, "n_resamples": 200},
        "threshold_free": {
            "topk_overlap_k": 16,
            "jaccard_roc_auc": round(0.5 + 0.2 * rng.random(), 4),
            "jaccard_average_precision": round(0.5 + 0.2 * rng.random(), 4),
            "code_cosine_roc_auc": None,
            "code_cosine_average_precision": None,
        },
        "codes": {
            "mean_l0_on_prompts": 40.0,
            "n_latents_active_on_prompts": 900,
            "n_distinct_top_latents": 40,
        },
        "sae": {
            "d_in": sae.d_in,
            "d_sae": d_sae,
            "architecture": sae.architecture,
            "expansion_ratio": float(sae.expansion),
        },
    }
    if sae.standard:
        l0 = {"topk": 32.0, "jumprelu": 45.0}.get(sae.architecture, 120.0 / sae.expansion**0.3)
        fvu = (0.25 if sae.architecture == "standard" else 0.16) / sae.expansion**0.35
        categories["standard"] = {
            "mse": round(fvu * 3.2, 6),
            "fvu": round(fvu, 6),
            "explained_variance": round(1 - fvu, 6),
            "l0": round(l0, 4),
            "l0_normalised": round(l0 / d_sae, 8),
            "dead_fraction": 0.01 * sae.expansion / 4,
            "cosine": 0.93,
            "ce_loss_recovered": None if sae.architecture == "jumprelu" else round(0.97 - 0.1 * fvu, 4),
            "kl_div_with_sae": 0.05,
        }
    if sae.baselines:
        categories["baseline_dense"] = {
            "accuracy": 0.61,
            "precision": 0.6,
            "recall": 0.66,
            "specificity": 0.55 + 0.01 * sae.layer,
            "f1": 0.63,
            "threshold": 0.8,
            "roc_auc": 0.66,
        }
        categories["baseline_random_sae"] = {
            "accuracy": 0.5,
            "precision": None,
            "recall": 0.02,
            "specificity": 0.985,
            "f1": 0.04,
            "n_pairs_no_active": 0,
        }
    used = sorted({d.latent_1 for d in details} | {d.latent_2 for d in details} - {-1})
    unstructured: dict[str, Any] = {
        "by_pos": {},
        "by_word": {},
        "logit_lens": {str(lat): [TOKENS[(lat + j) % len(TOKENS)] for j in range(8)] for lat in used},
    }
    if sae.top_contexts:
        unstructured["top_contexts"] = {
            str(lat): [
                {
                    "text": f"Example <{lat}> where the {WORDS[lat % len(WORDS)][0]} appears & fires.",
                    "activation": 9.5 - j,
                }
                for j in range(3)
            ]
            for lat in used
        }
    cfg: dict[str, Any] = {
        "architecture": sae.architecture,
        "d_in": sae.d_in,
        "d_sae": d_sae,
        "hook_name": sae.hook,
        "model_name": model,
    }
    if sae.architecture == "topk":
        cfg["k"] = 32
    return PSEvalResult(
        eval_type_id=EVAL_TYPE_ID,
        eval_config=PSEvalConfig(model_name=model, bootstrap_resamples=200),
        eval_id=f"00000000-0000-4000-8000-{seed:012d}",
        datetime_epoch_millis=1_700_000_000_000 + seed,
        eval_result_metrics=categories,
        eval_result_details=details,
        eval_result_unstructured=unstructured,
        sae_lens_id=sae.name,
        sae_cfg_dict=cfg,
        pseval_version="0.1.0",
        sae_name=sae.name,
        hook_name=sae.hook,
        model_name=model,
        **sae.extra,
    )


def write_results_folder(
    root: Path, saes: list[FakeSAE] | None = None, n_pairs: int = 72, nested: bool = True
) -> Path:
    """Write one result file per SAE (under ``root/results/ps_eval`` when nested) and return ``root``."""
    folder = root / "results" / EVAL_TYPE_ID if nested else root / EVAL_TYPE_ID
    for i, sae in enumerate(saes if saes is not None else default_saes()):
        result = fake_result(sae, n_pairs, seed=i)
        write_json_atomic(
            folder / f"{sae.name}_eval_results.json", result.model_dump(mode="json"), indent=None
        )
    # Another eval's file in the same tree must be ignored.
    write_json_atomic(
        root / "other" / "sparse_probing" / "x_eval_results.json",
        {"eval_type_id": "sparse_probing", "eval_result_metrics": {}},
    )
    return root
