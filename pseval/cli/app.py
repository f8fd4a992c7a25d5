"""What every ``pseval`` command shares: the app, the consoles, the one-line error handling and the options
several commands declare alike.

Every command turns a :class:`pseval.errors.PsevalError` (or an invalid option value) into one line on
stderr and exit code 2, without a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from pseval.cli_options import PsevalTyper
from pseval.errors import PsevalError

app = PsevalTyper(
    name="pseval",
    help="PS-Eval: do an SAE's features separate the meanings of polysemous words?",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
# Piped or captured output gets a wide, fixed width so tables are never cut into unreadable columns.
# COLUMNS, when set, is honoured either way.
_FIXED_WIDTH = None if os.environ.get("COLUMNS", "").isdigit() else 200
console = Console(width=None if sys.stdout.isatty() else _FIXED_WIDTH)
err_console = Console(stderr=True, width=None if sys.stderr.isatty() else _FIXED_WIDTH)

F = TypeVar("F", bound=Callable[..., Any])


_FIELD_OPTIONS = {"model_name": "--model", "bootstrap_resamples": "--bootstrap", "hook_name": "--hook"}
"""Config fields whose option is not the field name with dashes."""


def _option_names() -> dict[str, str]:
    """Config field names → the option a user types (``batch_size`` → ``--batch-size``)."""
    import typer.main

    commands = getattr(typer.main.get_command(app), "commands", {})
    flags = {
        opt
        for command in commands.values()
        for param in command.params
        for opt in (*param.opts, *param.secondary_opts)
        if opt.startswith("--") and not opt.startswith("--no-")
    }
    return {flag[2:].replace("-", "_"): flag for flag in flags} | _FIELD_OPTIONS


def _one_line(exc: BaseException) -> str:
    if isinstance(exc, ValidationError):
        # Raised while building a config from this command's options: name the options.
        from pseval.errors import validation_details

        details = validation_details(exc, _option_names())
        return f"invalid option value: {details}. Fix: pass valid values for the options named above."
    return str(exc)


def handle_errors(func: F) -> F:
    """Report user errors as one line and exit 2; keep tracebacks for genuine bugs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except (PsevalError, ValidationError) as exc:
            from rich.markup import escape  # messages may hold brackets, e.g. pip install 'pseval[ray]'

            err_console.print(
                f"[bold red]error:[/] {escape(_one_line(exc))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(code=2) from None
        except KeyboardInterrupt:
            err_console.print("interrupted: finished results are kept; rerun the command to continue")
            raise typer.Exit(code=130) from None

    return wrapper  # type: ignore[return-value]


def print_results(results: list[Any], title: str, fmt: str = "table") -> None:
    """An evaluation's results, baselines and dropped-pair counts in ``fmt`` (see pseval.report.tables)."""
    from pseval.report.tables import print_results as print_tables

    print_tables(results, console, title, fmt)


def title_of(results: list[Any], model: str, dataset: str, split: str) -> str:
    n_pairs = results[0].eval_result_metrics["ps_eval"]["n_pairs"] if results else 0
    return f"PS-Eval on {model} · {dataset} {split} · {n_pairs} pairs"


def note(message: str) -> None:
    """A line about what was done (files written): on stderr, so stdout stays the table or data."""
    err_console.print(message, highlight=False, soft_wrap=True)


ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Model alias, Hugging Face id or local folder.")]
AllowMismatchOpt = Annotated[
    bool,
    typer.Option(
        "--allow-model-mismatch",
        help="Score SAEs whose config records another model than --model (refused by default).",
    ),
]
FORMAT_HELP = "How to print the results: table (fits the terminal), markdown, csv or json."
FormatOpt = Annotated[Literal["table", "markdown", "csv", "json"], typer.Option("--format", help=FORMAT_HELP)]
DATASET_HELP = (
    "'wic', 'wordnet', 'wordnet-senses' (within-lemma sense retrieval), 'wordnet-2x2' (word form x "
    "meaning, docs/wordnet-dataset.md) or a .jsonl file of pairs or of sense items."
)
MULTI_TOKEN_HELP = (
    "Words of several tokens: drop (the paper), last (read the last sub-token) or mean (mean of the "
    "sub-tokens, encoded after pooling)."
)
ExecutorOpt = Annotated[
    Literal["local", "ray"],
    typer.Option(
        help="local (this process) or ray (one task per hook group on a Ray cluster, docs/distributed.md)."
    ),
]
RayAddressOpt = Annotated[
    str,
    typer.Option(
        help="With --executor ray: local (start a cluster here), auto (the running one) or HOST:PORT."
    ),
]
RayCpusOpt = Annotated[
    float | None,
    typer.Option(
        help="With --executor ray: CPUs per task. Default: a whole node's on the CPU, a GPU's share on cuda."
    ),
]
RayGpusOpt = Annotated[
    float | None,
    typer.Option(help="With --executor ray on cuda: GPUs per task (0.5 = two per GPU). Default: 1."),
]
RayGroupsOpt = Annotated[
    int | None,
    typer.Option(min=1, help="With --executor ray: hook groups (tasks). Default: as many as run at once."),
]


def ray_options(address: str, cpus: float | None, gpus: float | None, groups: int | None) -> Any:
    from pseval.distributed.cluster import RayOptions

    return RayOptions(address=address, cpus_per_task=cpus, gpus_per_task=gpus, n_groups=groups)
