"""Fixtures: fabricated results folders (see :mod:`tests.report.fabricate`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.report.fabricate import FakeSAE, write_results_folder


@pytest.fixture(scope="session")
def results_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep's results folder: 26 SAEs (3 architectures × 5 widths, a layer × hook-kind grid), nested."""
    return write_results_folder(tmp_path_factory.mktemp("sweep"))


@pytest.fixture(scope="session")
def single_result_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SAE, no baselines, no standard metrics, no contexts (the smallest result a user can have)."""
    sae = FakeSAE("standard", 8, 3, "resid_pre", standard=False, baselines=False)
    return write_results_folder(tmp_path_factory.mktemp("single"), [sae], n_pairs=20, nested=False)
