"""Shared pytest fixtures. Model factories live in :mod:`tests.helpers` so they can be imported."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from tests.helpers import tiny_loaded, tiny_model, tiny_tokenizer


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="Rewrite the stored results of tests/acceptance from this checkout instead of comparing with them.",
    )


@pytest.fixture(autouse=True)
def _no_site_check(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn the hook-site check off, except in tests marked ``site_check``.

    Most tests score SAEs with random weights, whose reconstruction is noise: no site check can tell them from
    an SAE read at the wrong site (FVU > 1), and it would stop every such run. The check's own tests
    (``tests/evals/test_site_check.py``) and the acceptance tests that pass ``--site-check`` keep it on.
    """
    if request.node.get_closest_marker("site_check") is not None:
        return
    from pseval.evals import site_check

    monkeypatch.setattr(site_check, "check_sites", lambda *_args, **_kwargs: {})
    # Tests that deliberately read an SAE with another BOS policy than its config records (input regimes,
    # prompt sharing) check something else than the site.
    monkeypatch.setattr(site_check, "refuse_bos_contradictions", lambda *_args, **_kwargs: None)


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Point ``$PSEVAL_CACHE`` at a fresh temporary folder for the test."""
    cache = tmp_path / "pseval-cache"
    monkeypatch.setenv("PSEVAL_CACHE", str(cache))
    yield cache


@pytest.fixture(scope="session")
def tiny_llama():  # type: ignore[no-untyped-def]
    """A shared tiny random Llama model (read-only: do not register hooks that outlive a test)."""
    return tiny_model("llama")


@pytest.fixture(scope="session")
def tiny_llama_loaded():  # type: ignore[no-untyped-def]
    """A shared tiny :class:`pseval.models.LoadedModel` (Llama, word-level tokenizer)."""
    return tiny_loaded("llama")


@pytest.fixture(scope="session")
def tiny_tok():  # type: ignore[no-untyped-def]
    """The tiny word-level tokenizer of :func:`tests.helpers.tiny_tokenizer`."""
    return tiny_tokenizer()
