"""The acceptance tests reuse the runner tests' tiny model folder and dataset."""

from tests.evals.conftest import tiny_dataset_file, tiny_model_dir

__all__ = ["tiny_dataset_file", "tiny_model_dir"]
