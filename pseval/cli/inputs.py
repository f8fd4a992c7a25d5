"""Commands about the inputs: ``pseval dataset`` (pair counts) and ``pseval metrics`` (standard SAE metrics)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from pseval.cli.app import (
    DATASET_HELP,
    MULTI_TOKEN_HELP,
    AllowMismatchOpt,
    ModelOpt,
    console,
    handle_errors,
    note,
)


@handle_errors
def dataset(
    model: ModelOpt = "smollm2-135m",
    name: Annotated[str, typer.Option("--dataset", help=DATASET_HELP)] = "wic",
    seed: Annotated[int, typer.Option(help="Seed of the balancing downsample (>= 0).")] = 0,
    balance: Annotated[bool, typer.Option("--balance/--no-balance", help="Balance the labels.")] = True,
    multi_token: Annotated[str, typer.Option(help=MULTI_TOKEN_HELP)] = "drop",
) -> None:
    """Print pair counts per split and label, and how many pairs were dropped for which reason.

    \b
    Example:
      pseval dataset --dataset my_pairs.jsonl --no-balance
    """
    from pseval.data.datasets import check_multi_token
    from pseval.evals.checks import check_seed
    from pseval.models.loading import load_tokenizer
    from pseval.report.tables import dataset_table

    check_seed(seed)
    policy = check_multi_token(multi_token)
    console.print(dataset_table(load_tokenizer(model), model, name, balance, seed, policy))
    console.print(f"balanced: {balance} (seed {seed}); counts in parentheses are before balancing")
    if policy != "drop":
        console.print(
            f"--multi-token {policy}: the single-token pairs are those of --multi-token drop; "
            "multi-token pairs are balanced on their own"
        )


@handle_errors
def metrics(
    sae: Annotated[
        list[str], typer.Option("--sae", "-s", metavar="SAE", help="SAE folder/file; repeat for several.")
    ],
    model: ModelOpt = "smollm2-135m",
    allow_model_mismatch: AllowMismatchOpt = False,
    hook: Annotated[
        str | None, typer.Option(help="Hook point; defaults to the one in each SAE's config.")
    ] = None,
    corpus: Annotated[str, typer.Option(help="Held-out text: 'bundled' or a .txt/.jsonl file.")] = "bundled",
    tokens: Annotated[int, typer.Option(help="Held-out tokens for MSE/FVU/L0.")] = 16384,
    ce_tokens: Annotated[
        int | None,
        typer.Option(help="Tokens for CE loss recovered and KL (0 = skip; default min(tokens, 4096))."),
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--out", "--output", "-o", help="Also write the metrics as JSON to this file."),
    ] = None,
) -> None:
    """Standard SAE metrics on held-out corpus text: MSE, FVU, L0, dead/dense latents, CE loss recovered, KL.

    \b
    Example:
      pseval metrics --sae saes/topk-4608 --tokens 16384 --out metrics.json
    """
    from pseval._io import check_writable, write_json_atomic
    from pseval.evals.runner import check_sae_fits, hook_for, resolve_saes
    from pseval.metrics.standard import standard_metrics
    from pseval.models.hooks import parse_hook_name
    from pseval.models.loading import load_model

    if tokens < 1:
        from pseval.errors import ConfigError

        raise ConfigError(f"--tokens must be positive (got {tokens})", "pass e.g. --tokens 16384")
    from pseval.evals.checks import check_count, check_model_matches

    check_count(ce_tokens, "--ce-tokens", "no CE loss or KL")
    if output is not None:
        check_writable(output, "--out", kind="file")
    named = resolve_saes(sae)
    for item in named:
        if isinstance(item.sae.cfg.metadata.get("transcoder"), dict):
            from pseval.errors import SAEError

            out_hook = item.sae.cfg.metadata["transcoder"].get("hook_name_out")
            raise SAEError(
                f"{item.name} is a transcoder (it predicts {out_hook}, not its input): reconstruction metrics "
                "do not apply to it",
                "run pseval eval on it (PS-Eval reads its encoder side), or pass an SAE to pseval metrics",
            )
        check_model_matches(item.name, item.sae.cfg.model_name, model, allow_model_mismatch, note)
    loaded = load_model(model)
    rows = {}
    for item in named:
        hook_name = hook_for(item, hook)
        parse_hook_name(hook_name, loaded.model)
        check_sae_fits(loaded, item, hook_name)
        result = standard_metrics(
            loaded, item.sae, hook_name, corpus=corpus, n_tokens=tokens, n_tokens_ce=ce_tokens
        )
        rows[item.name] = result.model_dump(mode="json")
    from pseval.report.fvu_flag import fvu_notes
    from pseval.report.metrics_table import metrics_renderable

    title = f"Standard metrics on held-out {corpus} text ({tokens:,} tokens)"
    console.print(metrics_renderable(rows, console, title))
    for line in fvu_notes([{"sae": name, "fvu": row.get("fvu")} for name, row in rows.items()]):
        console.print(line, highlight=False, markup=False)
    if output is not None:
        write_json_atomic(output, rows)
        note(f"wrote {output}")
