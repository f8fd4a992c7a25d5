"""One local Ray cluster (2 CPUs) shared by the distributed tests, and the tiny model and dataset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.evals.conftest import tiny_dataset_file, tiny_model_dir

__all__ = ["ray_cluster", "tiny_dataset_file", "tiny_model_dir"]


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[Any]:
    """A local Ray cluster of 2 CPUs; the executors use it as it is (and leave it running)."""
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
