"""pseval: PS-Eval for sparse autoencoders — do an SAE's features separate a polysemous word's meanings?

The Python API mirrors the CLI::

    import pseval
    results = pseval.evaluate("smollm2-135m", ["path/to/sae"], hook_name="blocks.12.hook_resid_post")
    print(results[0].metric("ps_eval", "specificity"))

Heavy submodules are imported on first use, so ``import pseval`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

from pseval._version import __version__

_EXPORTS = {
    "evaluate": "pseval.evals.runner",
    "PSEvalConfig": "pseval.evals.config",
    "PSEvalResult": "pseval.evals.schema",
    "SAE": "pseval.sae.model",
    "load_sae": "pseval.sae.formats",
    "save_sae": "pseval.sae.formats",
    "load_model": "pseval.models.loading",
    "load_dataset": "pseval.data.datasets",
    "build_prompts": "pseval.data.prompts",
    "train_sae": "pseval.training.trainer",
    "TrainConfig": "pseval.training.config",
    "PsevalError": "pseval.errors",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pseval' has no attribute {name!r}")
