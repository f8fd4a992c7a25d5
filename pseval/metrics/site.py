"""A dictionary's reconstruction and sparsity on a small corpus sample at one site (the hook-site check's numbers).

:func:`site_activations` runs the model once over ``n_tokens`` held-out text tokens of the bundled corpus
(BOS-prefixed or not, as the SAE's prompts will be) and keeps every requested hook's rows: one pass serves
every SAE read at those hooks, and the rows (``n_tokens × d_model`` per hook, a few MB) are cached on disk
next to the prompt activations, so a rerun costs no forward pass at all. :func:`site_reconstruction` then
measures one SAE on them (its encode and a sparse decode of its active latents only): FVU against the rows of
the hook its decoder writes (the input hook for an SAE, the output hook for a transcoder) and L0, with the same
running sums as the standard metrics (:class:`~pseval.metrics.standard.ReconstructionAccumulator`).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any, Literal

import torch
from pydantic import BaseModel, Field

from pseval._io import atomic_path, cache_dir, stable_hash
from pseval.data.corpus import BUNDLED, corpus_identity, iter_context_batches
from pseval.errors import DataError
from pseval.metrics.standard import ReconstructionAccumulator, _encode_decode
from pseval.models.hooks import as_module, parse_hook_name, run_with_cache

__all__ = ["SITE_CACHE_VERSION", "SiteCheck", "Verdict", "site_activations", "site_reconstruction"]

logger = logging.getLogger(__name__)

SITE_CACHE_VERSION = 1
"""Bump when what :func:`site_activations` stores changes (old cache files are then ignored)."""

CONTEXT_SIZE = 128
"""Default tokens per corpus context (BOS included), as the standard metrics and training use."""

SPARSE_DENSITY = 0.1
"""Above this share of active codes the site check decodes densely (a sparse matmul gains nothing there)."""

Verdict = Literal["pass", "poor_sae", "fail"]


class SiteCheck(BaseModel):
    """The ``site_check`` category of a result: the SAE measured at the site it is scored at."""

    tokens: int = Field(description="Held-out corpus text tokens measured on (special tokens left out).")
    hook_name: str = Field(description="Hook the encoder read.")
    target_hook: str | None = Field(
        description="Hook the reconstruction was compared with: hook_name for an SAE, the output hook for a "
        "transcoder (null when a transcoder's output could not be read)."
    )
    prepend_bos: bool = Field(description="Whether the corpus contexts started with BOS, as the prompts do.")
    context_size: int = Field(description="Tokens per corpus context (the SAE's recorded context length).")
    corpus: str = Field(description="Corpus whose held-out text was read.")
    fvu: float | None = Field(
        description="Σ‖x - x̂‖² / Σ‖x - mean(x)‖² at target_hook (null when not measured)."
    )
    l0: float = Field(description="Mean number of active latents per token.")
    recorded_fvu: float | None = Field(description="The FVU the SAE's config records (null: none).")
    recorded_l0: float | None = Field(
        description="The L0 the SAE's config or folder name records (null: none)."
    )
    recorded_from: str | None = Field(description="Where the recorded numbers come from.")
    l0_ratio: float | None = Field(
        description="max(l0 / recorded_l0, recorded_l0 / l0) (null without a recorded L0)."
    )
    input_norm: float = Field(
        description="Median ‖x‖ of the inputs the SAE read (the median: a few massive-activation tokens move "
        "the mean of 2,048 tokens by several percent)."
    )
    recorded_input_norm: float | None = Field(
        description="Mean ‖x‖ of the SAE's first training batch: sqrt(d_in) / activation_scale of pseval's "
        "trainer (null when not recorded)."
    )
    input_norm_ratio: float | None = Field(
        description="max(input_norm / recorded_input_norm, its inverse) (null without a recorded norm)."
    )
    fvu_limit: float = Field(description="FVU above which the site is refused.")
    l0_factor: float = Field(description="L0 ratio above which the site is refused.")
    norm_factor: float = Field(description="Input norm ratio above which the site is refused.")
    verdict: Verdict = Field(
        description="'pass'; 'poor_sae' (over a limit at the site pseval trained it at: recorded, not "
        "refused); 'fail' (refused unless --no-site-check)."
    )
    reason: str | None = Field(description="Which limit was crossed (null on 'pass').")
    fvu_not_measured: str | None = Field(
        default=None, description="Why fvu is null (a transcoder whose output pseval cannot compare)."
    )
    recorded_prepend_bos: bool | None = Field(
        default=None,
        description="The BOS policy the SAE's config records (null: none recorded; pseval-trained SAEs that "
        "predate recording it were trained with BOS).",
    )
    bos_mismatch: bool = Field(
        default=False,
        description="Whether prepend_bos contradicts recorded_prepend_bos: a known wrong site, refused "
        "whatever the numbers.",
    )


def _cache_path(loaded: Any, hook: str, n_tokens: int, add_bos: bool, corpus: str, context_size: int) -> Any:
    key = stable_hash(
        "site",
        SITE_CACHE_VERSION,
        str(getattr(loaded, "fingerprint", "")),
        str(getattr(loaded, "dtype", "")),
        parse_hook_name(hook).name,
        n_tokens,
        add_bos,
        context_size,
        corpus_identity(corpus),
    )
    return cache_dir() / "activations" / f"site-{key}.safetensors"


def _read(path: Any, n_tokens: int) -> torch.Tensor | None:
    if not path.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        rows_ND = load_file(str(path))["acts"]
    except (OSError, KeyError, SafetensorError, RuntimeError) as exc:
        logger.warning("ignoring unreadable site-check cache %s (%s); recomputing", path, exc)
        return None
    return rows_ND.float() if rows_ND.shape[0] <= n_tokens else None


def _write(path: Any, rows_ND: torch.Tensor) -> None:
    from safetensors.torch import save_file

    with atomic_path(path) as tmp:
        save_file({"acts": rows_ND.contiguous()}, str(tmp))


@torch.no_grad()
def site_activations(
    loaded: Any,
    hooks: list[str],
    n_tokens: int,
    add_bos: bool,
    corpus: str = BUNDLED,
    batch_size: int = 8,
    cache: bool = True,
    context_size: int = CONTEXT_SIZE,
) -> dict[str, torch.Tensor]:
    """Each hook's rows (fp32, CPU, ``[N, D]``) at the first ``n_tokens`` held-out text tokens of ``corpus``.

    Contexts of ``context_size`` tokens (activations depend on the position, so use the SAE's) start with BOS when ``add_bos``; special tokens (BOS, document
    separators) are left out, as in the standard metrics. One forward pass, stopped after the deepest hook,
    serves every hook not already cached. DataError when the corpus holds no text token.
    """
    paths = {hook: _cache_path(loaded, hook, n_tokens, add_bos, corpus, context_size) for hook in hooks}
    rows: dict[str, torch.Tensor] = {}
    if cache:
        for hook, path in paths.items():
            stored = _read(path, n_tokens)
            if stored is not None:
                rows[hook] = stored
    missing = [hook for hook in hooks if hook not in rows]
    if not missing:
        return rows
    module = as_module(loaded)
    param = next(module.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    pieces: dict[str, list[torch.Tensor]] = {hook: [] for hook in missing}
    batches = iter_context_batches(
        loaded.tokenizer, corpus, "holdout", context_size, batch_size, n_tokens, add_bos
    )
    for batch in batches:
        acts = run_with_cache(module, batch.input_ids.to(device), batch.attention_mask.to(device), missing)
        mask_BT = batch.token_mask.to(device)
        for hook in missing:
            pieces[hook].append(acts[hook][mask_BT].float().cpu())
    for hook in missing:
        if not pieces[hook]:
            raise DataError(f"the {corpus} corpus holds no held-out text", "pass a corpus with text")
        rows[hook] = torch.cat(pieces[hook])[:n_tokens]
        if cache:
            _write(paths[hook], rows[hook])
    return rows


@torch.no_grad()
def site_reconstruction(
    sae: Any, x_ND: torch.Tensor, target_ND: torch.Tensor | None = None, batch_size: int = 1024
) -> dict[str, Any]:
    """FVU, L0 and the other reconstruction metrics of ``sae`` encoding ``x_ND``.

    The reconstruction is compared with ``target_ND`` (the rows of the hook a transcoder writes), or with
    ``x_ND`` itself when None (an SAE).
    """
    target = x_ND if target_ND is None else target_ND
    if target.shape != x_ND.shape:
        raise DataError(
            f"the site check's target rows {tuple(target.shape)} do not match its inputs {tuple(x_ND.shape)}",
            "read a transcoder whose output width equals its input width",
        )
    accumulator = ReconstructionAccumulator()
    for x_BD, t_BD in zip(x_ND.split(batch_size), target.split(batch_size), strict=True):
        feats_BF, x_hat_BD = (_encode_sparse_decode if _sparse_decodable(sae) else _encode_decode)(sae, x_BD)
        accumulator.update(t_BD, x_hat_BD, feats_BF)
    return accumulator.compute()


def _sparse_decodable(sae: Any) -> bool:
    """Whether ``sae.decode`` is ``codes @ W_dec + b_dec`` in a dtype sparse matmuls take, on the CPU.

    Else the decode is dense: on a GPU it costs milliseconds, and the sparse path is measured on CPUs only.
    """
    from pseval.sae.model import SAE

    return (
        isinstance(sae, SAE)
        and sae.cfg.normalize_activations not in ("constant_norm_rescale", "layer_norm")
        and sae.W_dec.dtype in (torch.float32, torch.float64)
        and sae.W_dec.device.type == "cpu"
    )


def _encode_sparse_decode(sae: Any, x_ND: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """:func:`~pseval.metrics.standard._encode_decode` with the decode reading the active latents' rows only.

    The codes are kept as a sparse CSR tensor (one pass over the dense codes finds the active entries; the
    reconstruction sums count them from it) and decoded by :meth:`~pseval.sae.model.SAE.decode_sparse`, which
    agrees with the dense decode to float rounding (``tests/metrics/test_site.py``). Codes denser than
    :data:`SPARSE_DENSITY` are decoded densely.
    """
    param = sae.W_dec
    feats_NF = sae.encode(x_ND.to(device=param.device, dtype=param.dtype))
    with warnings.catch_warnings():  # "sparse CSR support is in beta": the few operations used here are not
        warnings.simplefilter("ignore", UserWarning)
        codes_NF = feats_NF.to_sparse_csr()
        if codes_NF.values().numel() > SPARSE_DENSITY * feats_NF.numel():
            return feats_NF.to(x_ND.device), sae.decode(feats_NF).to(device=x_ND.device, dtype=x_ND.dtype)
        del feats_NF
        x_hat_ND = sae.decode_sparse(codes_NF)
    return codes_NF, x_hat_ND.to(device=x_ND.device, dtype=x_ND.dtype)
