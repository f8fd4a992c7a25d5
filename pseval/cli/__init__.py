"""The ``pseval`` command line: a thin layer over the Python API.

``app.py`` holds what the commands share; each command lives in the module named below and is registered
here, in the order ``pseval --help`` lists them. ``pseval eval`` and ``pseval train`` are generated from
their config classes (:mod:`pseval.cli_options`).
"""

from __future__ import annotations

import os
import sys

from pseval.cli.app import app, console, err_console, handle_errors, print_results
from pseval.cli.eval_command import expand_release, register_eval
from pseval.cli.inputs import dataset, metrics
from pseval.cli.results import compare, inspect, plot, reliability, report
from pseval.cli.runs import demo, register_train, sweep

app.command()(dataset)
register_eval(app)
for _command in (compare, demo, plot, reliability, report, inspect, metrics, sweep):
    app.command()(_command)
register_train(app)

_expand_release = expand_release  # the name tests and scripts used before the CLI became a package


def _quiet_transformers() -> None:
    """Hide transformers' per-load progress bars and advisory warnings; pseval reports its own progress."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except Exception:  # transformers missing or changed: nothing to quiet
        pass


def main() -> None:
    """Console-script entry point."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    _quiet_transformers()
    from pseval._progress import set_reporter, stderr_reporter

    set_reporter(stderr_reporter)
    try:
        app(prog_name="pseval")
    except SystemExit:
        raise
    except BrokenPipeError:  # e.g. `pseval ... | head`
        sys.exit(0)


__all__ = ["app", "console", "err_console", "handle_errors", "main", "print_results"]
