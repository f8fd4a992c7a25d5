"""The plan of a PS-Eval run, from the SAEs' configs alone (no weights, no model).

Every SAE is opened from its config and its hook parsed; its input regime (:mod:`pseval.evals.regime`), its
result name and its result identity are decided, and its result file is checked: a file holding this very
result is a finished result (skipped), a file holding another stops the run, naming what differs
(:mod:`pseval.evals.results_store`). :func:`pseval.evals.runner.evaluate` then scores what is left.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pseval.errors import ConfigError, SAEError
from pseval.evals.checks import check_sae_settings, check_token_budgets
from pseval.evals.config import PSEvalConfig
from pseval.evals.regime import InputRegime, input_regime
from pseval.evals.results_store import (
    DATASET_HASH_KEY,
    DECODER_ROWS_KEY,
    IDENTITY_VERSION,
    check_destination,
    check_stored,
    choose_name,
    name_candidates,
    result_path,
)
from pseval.evals.schema import PSEvalResult
from pseval.metrics.ps_eval import NO_LATENT
from pseval.sae.config import SAEConfig
from pseval.sae.model import SAE

if TYPE_CHECKING:
    from pseval.sae.weights_check import WeightsRead


@dataclass
class NamedSAE:
    """An SAE with the name its result file is called by and where it came from."""

    name: str
    sae: SAE
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None


@dataclass
class SAEItem:
    """One SAE of a run: opened from its config, materialised only while it is scored."""

    base_name: str
    cfg: SAEConfig
    hook: str
    content_hash: str
    path: str | None = None
    release: str | None = None
    sae_id: str | None = None
    source: Any = None
    """The ``SAESource`` it is loaded from (None for an SAE passed as an object)."""
    sae: SAE | None = None
    """The SAE passed as an object (None for one opened from files)."""
    name: str = ""
    regime: InputRegime = field(default_factory=lambda: InputRegime(prepend_bos=None))
    fixed_name: bool = False
    """The result name was given with the spec (``(name, spec)``), not chosen here."""
    weights_check: Callable[[], None] | None = None
    """The NaN/Inf check done while the content hash read the files (raises the first bad tensor's error)."""
    decoder_hash: str | None = None
    """The hash of the decoder's bytes when they were read with the content hash (a metric of the run reads
    the whole decoder); None when they were not, or are part of ``content_hash``."""
    decoder_unhashed: bool = False
    """The decoder is in neither hash: its result records the hash of the decoder rows its scores read."""
    site_check: dict[str, Any] | None = None
    """The hook-site check's measurement (:mod:`pseval.evals.site_check`), None when it did not run."""
    unread: bool = False
    """Its files are not read yet: ``content_hash``, ``decoder_hash`` and ``weights_check`` are set by
    :meth:`take_read` (:class:`WeightReads` reads them while the model loads)."""

    def take_read(self, read: WeightsRead) -> None:
        """Record what one read of the SAE's files gave: its hashes and its NaN/Inf check."""
        self.content_hash, self.decoder_hash = read.content_hash, read.decoder_hash
        self.weights_check, self.decoder_unhashed = read.check, read.decoder_unhashed
        self.unread = False

    def load(self, device: str, dtype: str | None) -> SAE:
        """The SAE's weights on ``device`` (an SAE passed as an object is used as it is)."""
        if self.sae is not None:
            return self.sae
        # A load skips its own NaN/Inf pass when every tensor was checked before the model pass.
        sae: SAE = self.source.load(device=device, dtype=dtype, checked=self.weights_checked)
        return sae

    @property
    def weights_checked(self) -> bool:
        """Whether every tensor of the SAE's files was checked for NaN/Inf before the model pass."""
        return self.source is not None and bool(getattr(self.source, "weights_checked", False))


def sanitize_name(text: str) -> str:
    """A file-name-safe version of an SAE name."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("_") or "sae"


def _record_hook(name: str, cfg_hook: str | None, hook_name: str | None) -> str:
    hook = hook_name or cfg_hook
    if not hook:
        raise ConfigError(
            f"the SAE {name!r} records no hook point",
            "pass one with --hook, e.g. --hook blocks.12.hook_resid_post",
        )
    return hook


def open_items(
    saes: Sequence[Any], hook_name: str | None = None, read_decoder: bool = True, read_weights: bool = True
) -> list[SAEItem]:
    """Open every SAE spec (path, ``saelens:RELEASE/ID``, SAE object or ``(name, SAE)``) without its weights.

    Each SAE's files are read once for its content hash and NaN/Inf check: the encoder side, and the decoder
    only when ``read_decoder`` (a metric of the run reads it whole, :func:`reads_whole_decoder`). Without
    ``read_weights`` they are left unread (``SAEItem.unread``) for :meth:`SAEItem.take_read`.
    """
    from pseval.evals.multilayer import expand_multilayer
    from pseval.sae.formats.loader import open_sae
    from pseval.sae.source import SAESource
    from pseval.sae.weights_check import hash_and_check

    items: list[SAEItem] = []
    for spec in expand_multilayer(saes):
        path = release = sae_id = None
        sae: SAE | None = None
        fixed_name: str | None = None
        if isinstance(spec, NamedSAE):
            sae, base = spec.sae, spec.name
            path, release, sae_id = spec.path, spec.release, spec.sae_id
        elif isinstance(spec, SAE):
            sae, base = spec, f"sae{len(items)}"
        elif isinstance(spec, tuple) and isinstance(spec[1], SAE):
            base, sae = sanitize_name(str(spec[0])), spec[1]
        elif isinstance(spec, tuple):  # (result name, spec): the name was decided by a driver
            fixed_name, spec = sanitize_name(str(spec[0])), spec[1]
        if sae is not None:
            hook = _record_hook(base, sae.cfg.hook_name, hook_name)
            items.append(SAEItem(base, sae.cfg, hook, sae.fingerprint(), path, release, sae_id, sae=sae))
            continue
        text = str(spec)
        if isinstance(spec, SAESource):  # a view of a cross-layer dictionary (pseval.evals.multilayer)
            if hook_name is not None:
                raise ConfigError(
                    f"--hook does not apply to {spec.spec}, a view of a cross-layer dictionary",
                    "leave out --hook; choose layers with --sae-pattern",
                )
            source, text = spec, spec.spec
            base, path = sanitize_name(text), str(Path(str(source.path)).expanduser().resolve())
        elif text.startswith("saelens:"):
            source = open_sae(text, hook_name=hook_name)
            release, _, sae_id = text[len("saelens:") :].partition("/")
            base, path = sanitize_name(f"{release}_{sae_id}"), text
        else:
            source = open_sae(text, hook_name=hook_name)
            where = Path(source.path if source.path is not None else text).expanduser().resolve()
            base = sanitize_name(where.stem if where.is_file() else where.name)
            path = str(where)
            # A folder exported from a SAELens pretrained SAE records where it came from.
            metadata = source.cfg.metadata or {}
            if metadata.get("sae_lens_release") and metadata.get("sae_lens_id"):
                release, sae_id = str(metadata["sae_lens_release"]), str(metadata["sae_lens_id"])
        hook = _record_hook(base, source.cfg.hook_name, hook_name)
        item = SAEItem(
            fixed_name or base,
            source.cfg,
            hook,
            "",
            path,
            release,
            sae_id,
            source=source,
            fixed_name=fixed_name is not None,
            unread=True,
        )
        if read_weights:
            item.take_read(hash_and_check(source, read_decoder))  # one read: the hashes and the NaN/Inf check
        items.append(item)
    return items


def resolve_saes(saes: Sequence[Any], device: str = "cpu") -> list[NamedSAE]:
    """Load every SAE spec and name it uniquely (SAEs sharing a folder name get their parent folder's)."""
    named: list[NamedSAE] = []
    taken: set[str] = set()
    for item in open_items(saes):
        item.name = choose_name(
            name_candidates(item.base_name, item.path, sanitize_name), item.path, None, taken
        )
        taken.add(item.name)
        sae = item.load(device, None)
        named.append(NamedSAE(item.name, sae, item.path, item.release, item.sae_id))
    return named


def hook_for(item: NamedSAE, hook_name: str | None) -> str:
    """The hook an SAE is applied to: the explicit one, else the one its config records."""
    return _record_hook(item.name, item.sae.cfg.hook_name, hook_name)


def check_sae_fits(loaded: Any, item: NamedSAE | SAEItem, hook: str) -> None:
    """Fail early, naming both numbers, when the SAE's input width differs from the hook's."""
    from pseval.models.hooks import hook_width

    cfg = item.cfg if isinstance(item, SAEItem) else item.sae.cfg
    width = hook_width(loaded.model, hook)
    if cfg.d_in != width:
        raise SAEError(
            f"the SAE {item.name!r} expects d_in={cfg.d_in} but {hook} of {loaded.name} has width {width}",
            "pass an SAE trained on this model and hook, or the hook it was trained on with --hook",
        )


def reads_whole_decoder(config: PSEvalConfig) -> bool:
    """Whether a metric of the run reads every SAE's whole decoder (the site check's and the standard metrics'
    reconstructions, folded decoder norms); scoring alone reads the rows of the chosen latents only."""
    return bool(config.site_check or config.standard_metrics_tokens > 0 or config.fold_decoder_norms)


def _check_weights(item: SAEItem, read_decoder: bool = True) -> None:
    """Fail on NaN/Inf weights before any pass, reading each SAE's files at most once.

    Weights readable lazily from safetensors were checked while their content hash read them (what scoring
    reads, when few enough bytes); the decoder too when ``read_decoder`` (a metric of the run reads it whole,
    :func:`reads_whole_decoder`; otherwise scoring checks the rows it reads). The files of a huge SAE are not
    read here: its per-latent vectors are checked now and its matrices block by block as scoring reads them
    (see :mod:`pseval.sae.weights_check`). Any other SAE is loaded (memory-mapped where the format allows) and
    let go.
    """
    if item.source is None:
        return
    if item.weights_check is not None:
        item.weights_check()  # records the tensors it checked in source.checked_tensors
        left = set(item.source.tensors or ()) - item.source.checked_tensors
        if read_decoder and left:
            from pseval.sae.weights_check import check_finite_tensors

            check_finite_tensors(item.source, names=left)
            item.source.checked_tensors |= frozenset(left)
        return
    if item.source.block_reader is not None:  # a cross-layer view: every file of its layers, streamed
        from pseval.sae.weights_check import check_finite_tensors

        check_finite_tensors(item.source)
        return
    if getattr(item.source, "tensors", None) is not None:
        from pseval.sae.weights_check import check_finite_tensors, check_vectors

        if item.source.hashes_bytes():
            check_finite_tensors(item.source)
        else:
            check_vectors(item.source)
        return
    sae = item.source.load(device="cpu", dtype=None)
    del sae
    gc.collect()


def result_identity(item: SAEItem, config: PSEvalConfig, dataset_sha256: str | None = None) -> dict[str, Any]:
    """Everything that decides the numbers of ``item``'s result (compared key by key on reruns).

    ``dataset_sha256`` is the content hash of ``config.dataset`` (computed here when not given).
    """
    from pseval.data.datasets import dataset_sha256 as content_hash

    return {
        "identity_version": IDENTITY_VERSION,
        "sae_content_hash": item.content_hash,
        "sae_decoder_hash": item.decoder_hash,
        "model_name": config.model_name,
        "hook_name": item.hook,
        **item.regime.identity(),
        **config.identity(),
        DATASET_HASH_KEY: dataset_sha256 or content_hash(config.dataset),
        "standard_metrics_tokens": config.standard_metrics_tokens,
        "standard_metrics_ce_tokens": (
            config.standard_metrics_ce_tokens if config.standard_metrics_tokens > 0 else None
        ),
    }


def _older_identity(item: SAEItem, identity: dict[str, Any], version: int) -> dict[str, Any] | None:
    """``identity`` as identity version ``version`` computed it: version 1 hashed every byte of the files with
    sha256, version 2 the same bytes as now with sha256 (the files are read once more to compute it)."""
    if version == 2:
        if item.source is None:  # an SAE object: its fingerprint did not change
            return {**identity, "identity_version": 2}
        from pseval.sae.weights_check import hash_and_check

        read = hash_and_check(item.source, identity.get("sae_decoder_hash") is not None, algorithm="sha256")
        hashes = {"sae_content_hash": read.content_hash, "sae_decoder_hash": read.decoder_hash}
        return {**identity, "identity_version": 2, **hashes}
    if version != 1:
        return None
    content_hash = (
        item.source.content_hash(algorithm="sha256") if item.source is not None else item.content_hash
    )
    earlier = {k: v for k, v in identity.items() if k != "sae_decoder_hash"}
    return {**earlier, "identity_version": 1, "sae_content_hash": content_hash}


def chosen_latents(details: Sequence[Any]) -> list[int]:
    """The latents a result's pairs chose (both contexts), sorted: whose decoder rows its scores read."""
    chosen = {int(getattr(d, name)) for d in details for name in ("latent_1", "latent_2")}
    return sorted(chosen - {NO_LATENT})


def decoder_rows_key(item: SAEItem, details: Sequence[Any]) -> dict[str, Any]:
    """The identity key of the decoder rows scores with these per-pair ``details`` read (the chosen latents'),
    hashed from the SAE's files; empty when the content hashes cover the whole decoder already."""
    from pseval.sae.lazy import lazy_blocks
    from pseval.sae.weights_check import decoder_rows_hash

    if not item.decoder_unhashed:
        return {}
    return {DECODER_ROWS_KEY: decoder_rows_hash(lazy_blocks(item.source), chosen_latents(details))}


def decoder_rows_identity(item: SAEItem, result: PSEvalResult) -> dict[str, Any]:
    """:func:`decoder_rows_key` of a stored result, read from the files now: a stored result whose decoder rows
    changed on disk is not taken for a finished one."""
    if DECODER_ROWS_KEY not in (result.result_identity or {}):
        return {}
    return decoder_rows_key(item, result.eval_result_details)


def _distinct(items: list[SAEItem], status: Callable[[str], None]) -> list[SAEItem]:
    """``items`` with each SAE once: the same resolved path or SAELens spec given again is scored once."""
    seen: dict[tuple[str, str], int] = {}
    distinct: list[SAEItem] = []
    for item in items:
        if item.path is None or item.fixed_name:
            distinct.append(item)
            continue
        key = (item.path, item.base_name)  # the views of one cross-layer dictionary share its path
        seen[key] = seen.get(key, 0) + 1
        if seen[key] == 1:
            distinct.append(item)
    for (path, _), count in seen.items():
        if count > 1:
            status(f"the SAE {path} was given {count} times: it is scored once, with one result file")
    return distinct


class WeightReads:
    """The files of SAEs read on one background thread, in order, while the main thread loads the model.

    Each read is :func:`~pseval.sae.weights_check.hash_and_check`: the identity hash and the NaN/Inf check of
    one sequential read, much of it spent waiting on the disk or in the kernel's copy, without the GIL. Loading
    the model is mostly imports and module set-up, holding the GIL, so the two overlap. The thread builds no module and sets no default dtype, device or thread
    count (transformers' process-wide patches while it builds a model touch module construction only; MKL's
    thread count is process-wide, so the read keeps torch's). :meth:`finish` joins it before the model pass:
    a bad tensor still stops the run before any forward pass.
    """

    def __init__(self, items: list[SAEItem], read_decoder: bool) -> None:
        from pseval.sae.weights_check import ReadBuffers, hash_and_check

        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pseval-read")
        self.items = items
        read = partial(hash_and_check, read_decoder=read_decoder, own_threads=True, buffers=ReadBuffers())
        self._reads = [self._pool.submit(read, item.source) for item in items]

    def finish(self) -> None:
        """Wait for every read and record it in its item (re-raising the first read's error)."""
        try:
            for item, read in zip(self.items, self._reads, strict=True):
                item.take_read(read.result())
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Drop the reads not begun and wait for the one under way (a run stopping early)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


@dataclass
class RunPlan:
    """What a run will do, decided from the SAEs' configs alone: names, identities, finished results."""

    items: list[SAEItem]
    identities: dict[str, dict[str, Any]]
    finished: dict[str, PSEvalResult]
    reads: WeightReads | None = None
    """The reads still under way (``plan_run(read_later=True)``); :meth:`finish_reads` completes them."""
    identify: Callable[[SAEItem], dict[str, Any]] | None = None
    """An item's result identity once its files are read (:func:`result_identity` with the run's settings)."""

    def finish_reads(self) -> None:
        """Complete the reads under way and the identities of their SAEs (a no-op when none are)."""
        if self.reads is None:
            return
        reads, self.reads = self.reads, None
        reads.finish()
        assert self.identify is not None
        for item in reads.items:
            self.identities[item.name] = self.identify(item)

    def cancel_reads(self) -> None:
        """Stop the reads under way (a run that fails before they are needed)."""
        if self.reads is not None:
            self.reads.cancel()
            self.reads = None


def plan_run(
    saes: Sequence[Any],
    config: PSEvalConfig,
    hook_name: str | None = None,
    output_folder: str | Path | None = None,
    force_rerun: bool = False,
    status: Callable[[str], None] = lambda _msg: None,
    read_later: bool = False,
) -> RunPlan:
    """Open every SAE (configs only), decide its result name and identity, and find its finished result.

    Fails before any model work when an SAE is bad or its result file holds another result. The files of an
    SAE with a stored result are read now (its identity decides whether it is finished); with ``read_later``
    the others are read on a background thread (:class:`WeightReads`), and the caller completes them with
    :meth:`RunPlan.finish_reads` (or stops them with :meth:`RunPlan.cancel_reads`) before the model pass.
    """
    from pseval.data.datasets import dataset_sha256
    from pseval.sae.weights_check import hash_and_check

    check_token_budgets(config.standard_metrics_tokens, config.standard_metrics_ce_tokens)
    read_decoder = reads_whole_decoder(config)
    items = _distinct(open_items(saes, hook_name, read_decoder, read_weights=False), status)
    stored_paths = _name_and_check(items, config, output_folder, force_rerun, status)
    later = [item for item in items if item.unread and item.name not in stored_paths] if read_later else []
    plan = RunPlan(items, {}, {}, WeightReads(later, read_decoder) if later else None)
    reading = {id(item) for item in later}
    try:
        dataset_hash = dataset_sha256(config.dataset)  # once: every SAE of the run reads the same files
        plan.identify = identify = partial(result_identity, config=config, dataset_sha256=dataset_hash)
        for item in items:
            if id(item) in reading:
                continue
            if item.unread:
                item.take_read(hash_and_check(item.source, read_decoder))
            plan.identities[item.name] = identify(item)
            if item.name not in stored_paths:
                continue
            older = partial(_older_identity, item, plan.identities[item.name])
            stored = check_stored(
                stored_paths[item.name],
                plan.identities[item.name],
                older,
                partial(decoder_rows_identity, item),
            )
            if stored is not None:
                plan.finished[item.name] = stored
                status(f"skip {item.name}: finished result found (use --force-rerun to redo)")
    except BaseException:
        plan.cancel_reads()
        raise
    return plan


def _name_and_check(
    items: list[SAEItem],
    config: PSEvalConfig,
    output_folder: str | Path | None,
    force_rerun: bool,
    status: Callable[[str], None],
) -> dict[str, Path]:
    """Check each SAE's settings and hook, decide its input regime and result name, and check its result file
    can be written; return the result files to compare with (those that exist, unless ``--force-rerun``)."""
    from pseval.models.hooks import parse_hook_name

    taken: set[str] = set()
    stored: dict[str, Path] = {}
    for item in items:
        parse_hook_name(item.hook)
        check_sae_settings(item.base_name, item.cfg, config, status)
        item.regime = input_regime(item.cfg.metadata, config)
        if config.controls:  # an SAE without a recorded training config fails here, before any work
            from pseval.training.controls import control_train_config

            control_train_config(item.cfg, "decoder")
        if not item.fixed_name:
            item.name = choose_name(
                name_candidates(item.base_name, item.path, sanitize_name), item.path, output_folder, taken
            )
        elif item.base_name in taken:
            raise ConfigError(
                f"two SAEs were given the result name {item.base_name!r}", "give them distinct names"
            )
        else:
            item.name = item.base_name
        taken.add(item.name)
        if output_folder is None:
            continue
        path = result_path(output_folder, item.name)
        check_destination(path)
        if not force_rerun and path.exists():
            stored[item.name] = path
    return stored
