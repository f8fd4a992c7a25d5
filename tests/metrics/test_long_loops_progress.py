"""The long corpus loops (reconstruction, CE/KL, latent statistics) report their progress in tokens."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pseval import _progress
from pseval.evals.interpret import corpus_latent_stats
from pseval.metrics.standard import standard_metrics
from pseval.sae.config import config_from_dict
from pseval.sae.model import SAE
from tests.helpers import tiny_loaded, write_word_corpus

HOOK = "blocks.1.hook_resid_post"


class Loops:
    """A reporter that records, per loop description, its total, the units advanced and whether it closed."""

    def __init__(self) -> None:
        self.loops: dict[str, dict[str, Any]] = {}

    def __call__(self, description: str, total: int, unit: str) -> Any:
        loop = self.loops[description] = {
            "total": total,
            "unit": unit,
            "done": 0,
            "steps": 0,
            "closed": False,
        }

        class Running:
            def advance(self, n: int) -> None:
                loop["done"] += n
                loop["steps"] += 1

            def close(self) -> None:
                loop["closed"] = True

        return Running()

    def named(self, prefix: str) -> dict[str, Any]:
        matches = [loop for description, loop in self.loops.items() if description.startswith(prefix)]
        assert len(matches) == 1, self.loops
        return matches[0]


@pytest.fixture
def loops() -> Iterator[Loops]:
    recorder = Loops()
    previous = _progress.set_reporter(recorder)
    yield recorder
    _progress.set_reporter(previous)


@pytest.fixture(scope="module")
def loaded() -> Any:
    return tiny_loaded("llama", n_layers=3, d_model=32)


@pytest.fixture(scope="module")
def corpus_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    return write_word_corpus(tmp_path_factory.mktemp("corpus") / "docs.txt", n_docs=3000)


def _sae() -> SAE:
    return SAE.create_random(
        config_from_dict({"architecture": "standard", "d_in": 32, "d_sae": 64, "hook_name": HOOK})
    )


def test_standard_metrics_report_reconstruction_and_ce_progress(
    loops: Loops, loaded: Any, corpus_file: str
) -> None:
    standard_metrics(loaded, _sae(), HOOK, corpus=corpus_file, n_tokens=300, n_tokens_ce=120, context_size=16)
    reconstruction = loops.named("reconstruction metrics")
    assert reconstruction["total"] == 300 and reconstruction["unit"] == "tokens"
    assert reconstruction["done"] >= 300 and reconstruction["steps"] > 1 and reconstruction["closed"]
    ce = loops.named("CE loss and KL")
    assert ce["total"] == 120 and ce["unit"] == "tokens"
    assert ce["done"] >= 120 and ce["steps"] > 1 and ce["closed"]


def test_skipped_ce_metrics_start_no_loop(loops: Loops, loaded: Any, corpus_file: str) -> None:
    standard_metrics(loaded, _sae(), HOOK, corpus=corpus_file, n_tokens=50, n_tokens_ce=0, context_size=16)
    assert not any(description.startswith("CE loss") for description in loops.loops)


def test_latent_statistics_report_their_corpus_pass(
    loops: Loops, loaded: Any, corpus_file: str, tmp_path: Path
) -> None:
    corpus_latent_stats(
        loaded,
        _sae(),
        HOOK,
        [1, 5],
        n_tokens=200,
        corpus=corpus_file,
        context_size=16,
        cache_root=tmp_path / "acts",
        chunk_rows=64,
    )
    encode = loops.named("latent frequencies")
    assert encode == {"total": 200, "unit": "tokens", "done": 200, "steps": 4, "closed": True}
