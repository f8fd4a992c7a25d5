"""PS-Eval at release scale, end to end: ``pseval eval`` as a user runs it, against the limit and the peer.

Every timed run is a subprocess started from the same state: the SAE files dropped from the page cache
(``posix_fadvise(POSIX_FADV_DONTNEED)``), the prompt activation cache emptied (each run does its own forward
pass), the model export, the corpus activation cache of ``--interpret-tokens`` and the note's count of
``--split all`` anchors kept (a user's second run).
The runs are interleaved (A/B/C, A/B/C, ...) and repeated; each figure is reported as min and median, and
the ratios are taken between medians (and between minima) measured in the same run.

Sides, for 1 and for ``--n-saes`` (32) JumpReLU SAEs of width 36,864 on SmolLM2 ``blocks.12.hook_resid_post``
(random weights, thresholds calibrated so that the mean L0 on the evaluated prompts is ~50):

- ``pseval_default``: ``pseval eval --sae ...`` with the defaults (baselines, bootstrap, interpretation);
- ``pseval_same_work``: ``pseval eval --no-baselines --interpret-tokens 0 --logit-lens-tokens 0 --bootstrap 0``;
- ``peer``: what a user does without pseval (the SAEBench way): load the model with transformers, one forward
  pass truncated after the hooked layer (batches of 32 in the prompts' order), then per SAE ``sae_lens.SAE.load_from_disk`` + ``encode`` of the
  same cached activations + the top-1 latent;
- ``limit``: the physical floor of the same work: load the model and run the truncated forward pass (batches
  of 32 longest first, as pseval batches them, so padding costs least), then
  per SAE one sequential read of the bytes the score needs (``W_enc`` and the per-latent vectors) and one
  ``prompts x d_in x d_sae`` matmul;
- ``limit_default``: the floor of what the defaults compute. On top of ``limit``'s model load, forward pass,
  read and prompts matmul: the truncated forward pass over the held-out split's prompts (the dense baseline's
  threshold; no sense items, as pseval builds them), the read of the decoder rows of the chosen latents
  (``latents x d_in``, one ``preadv`` per row, sorted), the interpretation's encode as one
  ``interpret_tokens x d_in x d_sae`` matmul (in row chunks into one reused buffer; the rows are random, drawn
  before the clock starts: pseval reads them from the corpus activation cache, so leaving that read out only
  makes the limit stricter), the random control's ``W_enc`` drawn as pseval draws it (uniform, Kaiming bound)
  and its ``prompts x d_in x d_sae`` matmul, and the logit lens as one ``latents x d_model x vocabulary``
  matmul against an unembedding of the model's shape. The chosen latents are the distinct top-1 latents of
  the prompts in pairs, counted off the clock from the JumpReLU codes. Left out, so the floor stays a floor:
  the firing counts and top-k of the interpretation, the JumpReLU masks, the final norm and top tokens of the
  logit lens, the bootstrap (2,000 resamples of pair-level statistics), the dense baseline and control
  (cosines of prompt pairs) and writing the results.

``default_1_vs_limit_1`` compares the defaults with the same-work limit (less work than the defaults do);
``default_1_vs_limit_default_1`` with ``limit_default``, the like-for-like floor the goal is stated against.

Peak RSS of each run is the child's own (``VmHWM``, written as it exits), so the 1- and 32-SAE figures come from
the same cache state. Results are printed and written as JSON (``--out``), then every goal as a table
(figure, pseval, reference, ratio of medians; of minima, goal, met by the median).

    python benchmarks/bench_scale.py [--quick] [--n-saes 32] [--repeats 3] [--out benchmarks/results/scale.json]

``--quick`` (width 2,048, 2 SAEs, 16 pairs, one round, light defaults) runs in a couple of minutes and is
what the test suite runs so this script cannot rot; its figures mean nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

WIDTH = 36_864
SMOLLM = "smollm2-135m"
HOOK = "blocks.12.hook_resid_post"
TARGET_L0 = 50
SAME_WORK = ["--no-baselines", "--interpret-tokens", "0", "--logit-lens-tokens", "0", "--bootstrap", "0"]
VECTORS = ("b_enc", "threshold", "b_dec")


@dataclass
class Setup:
    """What every run shares: the folders, the SAEs, the prompts and their cached activations."""

    root: Path
    cache: Path
    saes: list[Path]
    width: int
    max_pairs: int | None
    extra: list[str] = field(default_factory=list)
    """Arguments added to every ``pseval eval`` (``--quick``: light defaults)."""
    info: dict[str, Any] = field(default_factory=dict)
    model: str = SMOLLM

    @property
    def prompts_file(self) -> Path:
        return self.root / "prompts.pt"


# ------------------------------------------------------------------------------------------------- set-up


def _env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"PSEVAL_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"})
    return env


def _private_cache(root: Path) -> Path:
    """A pseval cache whose model exports are the user's (linked), with its own activation caches."""
    from pseval._io import cache_dir

    cache = root / "cache"
    cache.mkdir()
    (cache / "models").symlink_to(cache_dir() / "models")
    return cache


def _prompts(max_pairs: int | None, model: str = SMOLLM, held_out: bool = False) -> dict[str, Any]:
    """The evaluated prompts (token ids, target index) and their activations at the hook, as pseval builds them.

    With ``held_out``, also the held-out split's prompts that a default eval runs the model on (the dense
    baseline's threshold), without sense items as pseval builds them, for ``limit_default``.
    """
    from pseval.data.datasets import load_dataset
    from pseval.data.prompts import build_prompts
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.runner import _held_out_split, prompt_activations
    from pseval.models.hooks import as_module
    from pseval.models.loading import load_model

    loaded = load_model(model)
    config = PSEvalConfig(model_name=model, max_pairs=max_pairs)

    def split_prompts(split: str, senses: bool = True) -> Any:
        dataset = load_dataset(loaded.tokenizer, name=config.dataset, split=split, balance=config.balance,
                               seed=config.seed, max_pairs=max_pairs, multi_token=config.multi_token)  # fmt: skip
        if not senses:
            dataset = dataset.model_copy(update={"senses": None})
        return build_prompts(loaded.tokenizer, dataset, template=config.template, position=config.position)

    prompts = split_prompts(config.split)
    data = prompt_activations(loaded, config, [HOOK])
    acts_PD = data.acts[HOOK]
    if acts_PD.shape[0] != len(prompts.prompts):
        raise SystemExit("the prompt set differs from the one pseval scores")
    out = {
        "input_ids": [p.input_ids for p in prompts.prompts],
        "target_index": [p.target_index for p in prompts.prompts],
        "acts": acts_PD,
        "model_folder": str(getattr(loaded.model, "name_or_path", "")),
        "layer": int(HOOK.split(".")[1]),
        # The prompts whose top-1 latents are the chosen ones (logit lens, interpretation).
        "pair_rows": sorted({row for pair in data.pair_index for row in pair}),
        "vocab_size": int(as_module(loaded.model).get_output_embeddings().weight.shape[0]),
    }
    held_split = _held_out_split(config.split)
    if held_out and held_split is not None:
        held = split_prompts(held_split, senses=False)
        out["held_out_input_ids"] = [p.input_ids for p in held.prompts]
        out["held_out_target_index"] = [p.target_index for p in held.prompts]
    return out


def _write_saes(folder: Path, n: int, width: int, acts_PD: torch.Tensor) -> tuple[list[Path], list[float]]:
    """Random JumpReLU SAEs in SAELens format, each with one threshold giving a mean L0 of ~TARGET_L0."""
    from pseval.sae.config import config_from_dict
    from pseval.sae.formats import save_sae
    from pseval.sae.model import SAE

    paths, l0s = [], []
    for i in range(n):
        cfg = config_from_dict({"architecture": "jumprelu", "d_in": acts_PD.shape[1], "d_sae": width,
                                "hook_name": HOOK, "model_name": SMOLLM})  # fmt: skip
        sae = SAE.create_random(cfg, seed=i)
        with torch.no_grad():
            pre_PF = (acts_PD - sae.b_dec) @ sae.W_enc + sae.b_enc
            k = TARGET_L0 * acts_PD.shape[0]
            threshold = float(pre_PF.flatten().kthvalue(pre_PF.numel() - k).values)
            sae.threshold.fill_(threshold)
            l0s.append(float((pre_PF > threshold).sum(-1).float().mean()))
        del pre_PF
        paths.append(save_sae(sae, folder / f"sae_{i:02d}"))
    return paths, l0s


def prepare(
    root: Path, n_saes: int, width: int, max_pairs: int | None, extra: list[str], reuse: Path | None = None
) -> Setup:
    cache = _private_cache(root)
    os.environ["PSEVAL_CACHE"] = str(cache)
    data = _prompts(max_pairs, held_out=True)
    data["interpret_tokens"] = _interpret_tokens(extra)
    if reuse is None:
        saes, l0s = _write_saes(root / "saes", n_saes, width, data["acts"])
    else:  # SAEs written by an earlier run of this script (their thresholds calibrated then)
        saes, l0s = sorted(p for p in reuse.iterdir() if p.is_dir())[:n_saes], []
    torch.save(data, root / "prompts.pt")
    setup = Setup(root, cache, saes, width, max_pairs, extra)
    setup.info = {
        "n_prompts": int(data["acts"].shape[0]),
        "d_in": int(data["acts"].shape[1]),
        "calibrated_mean_l0": [round(x, 1) for x in l0s],
        "sae_file_mib": round(_sae_file(saes[0]).stat().st_size / 2**20, 1),
    }
    # One untimed run fills the corpus activation cache that --interpret-tokens reads (a user's second run).
    _pseval(
        setup, setup.saes[:1], ["--no-baselines", "--bootstrap", "0", "--logit-lens-tokens", "0"], "warmup"
    )
    return setup


def _given(extra: list[str]) -> dict[str, str]:
    """The ``--flag value`` pairs of the arguments added to every ``pseval eval``."""
    return dict(zip(extra[::2], extra[1::2], strict=True))


def _interpret_tokens(extra: list[str]) -> int:
    """Corpus tokens the default eval's interpretation encodes: ``--interpret-tokens`` if given, else pseval's."""
    from pseval.evals.config import PSEvalConfig

    default = PSEvalConfig.model_fields["interpret_tokens"].default
    return int(_given(extra).get("--interpret-tokens", default))


def score_parts(setup: Setup) -> dict[str, float]:
    """Seconds of ``score_sae`` on one SAE (read lazily from its file, page cache warm, prompt activations
    cached) with the defaults, without the interpretation pass and without the bootstrap: what each costs."""
    from pseval.evals.config import PSEvalConfig
    from pseval.evals.runner import prompt_activations
    from pseval.evals.scoring import score_sae
    from pseval.models.loading import load_model
    from pseval.sae.formats.loader import open_sae

    given = _given(setup.extra)
    fields = {"interpret_tokens": _interpret_tokens(setup.extra),
              "bootstrap_resamples": int(given.get("--bootstrap", 2000))}  # fmt: skip
    loaded = load_model(SMOLLM)
    config = PSEvalConfig(model_name=SMOLLM, max_pairs=setup.max_pairs, **fields)
    data = prompt_activations(loaded, config, [HOOK])
    source = open_sae(str(setup.saes[0]))
    variants = {
        "defaults": {},
        "no_interpret": {"interpret_tokens": 0},
        "no_bootstrap": {"bootstrap_resamples": 0},
    }
    seconds: dict[str, float] = {}
    for name, update in [*variants.items(), ("defaults", {})]:  # the defaults twice, the faster kept
        started = time.perf_counter()
        score_sae(
            loaded, source, HOOK, data, config.model_copy(update=update), held_out=data, baselines_by_hook={}
        )
        seconds[name] = min(seconds.get(name, float("inf")), time.perf_counter() - started)
    return {k: round(v, 3) for k, v in seconds.items()}


# ------------------------------------------------------------------------------------------------- runs


def _sae_file(folder: Path) -> Path:
    return next(folder.glob("*.safetensors"))


def drop_page_cache(paths: list[Path]) -> None:
    """Evict the SAE files from the page cache, so each run reads them from disk."""
    for folder in paths:
        for path in folder.iterdir():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def _reset_state(setup: Setup, saes: list[Path]) -> None:
    shutil.rmtree(setup.cache / "activations", ignore_errors=True)
    drop_page_cache(saes)


_PEAK_WRAPPER = """
import atexit, os, runpy, sys
def _peak():
    with open("/proc/self/status") as fh:
        kib = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:"))
    with open("/proc/self/io") as fh:
        read = next(int(line.split()[1]) for line in fh if line.startswith("read_bytes:"))
    with open(os.environ["BENCH_PEAK_FILE"], "w") as out:
        out.write(f"{kib} {read}")
atexit.register(_peak)
sys.argv = sys.argv[1:]
if sys.argv[0].endswith(".py"):
    runpy.run_path(sys.argv[0], run_name="__main__")
else:
    runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
"""
"""Runs a module or script and writes its own peak RSS (``VmHWM``, the high-water mark of the memory it mapped
after ``exec``) and the bytes it made the kernel fetch from storage (``/proc/self/io`` ``read_bytes``: page
cache hits are not counted, so with the SAE files dropped from the cache it is what the run read of them, plus
whatever else was not cached). ``wait4``'s ``ru_maxrss`` would not do: Linux carries the parent's peak into the
child's across ``fork`` and ``exec``, and this benchmark's own process holds a model."""


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Wall seconds and peak RSS (MiB, the child's own) of ``python -m MODULE ...`` or ``python SCRIPT ...``."""
    with tempfile.NamedTemporaryFile(prefix="pseval-bench-peak-", dir="/tmp") as peak_file:
        env = {**env, "BENCH_PEAK_FILE": peak_file.name}
        argv = [cmd[0], "-c", _PEAK_WRAPPER, *(cmd[2:] if cmd[1] == "-m" else cmd[1:])]
        started = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}")
        peak_kib, read_bytes = (int(x) for x in (Path(peak_file.name).read_text() or "0 0").split())
    return {"seconds": seconds, "peak_rss_mib": peak_kib / 1024, "disk_read_mib": read_bytes / 2**20,
            "output": done.stdout}  # fmt: skip


def _pseval(setup: Setup, saes: list[Path], flags: list[str], label: str) -> dict[str, Any]:
    out = setup.root / "out" / label
    shutil.rmtree(out, ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "pseval",
        "eval",
        "--model",
        setup.model,
        "--out",
        str(out),
        *setup.extra,
        *flags,
        # The benchmark's SAEs have random weights (thresholds calibrated to L0 50), which fit no site, so the
        # hook-site check would stop every run: its cost is measured apart (benchmarks/bench_site_check.py).
        "--no-site-check",
    ]
    if setup.max_pairs:
        cmd += ["--max-pairs", str(setup.max_pairs)]
    return timed([*cmd, *[a for p in saes for a in ("--sae", str(p))]], _env(setup.cache))


def _child(setup: Setup, saes: list[Path], part: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", part, "--prompts", str(setup.prompts_file),
           *[a for p in saes for a in ("--sae", str(p))]]  # fmt: skip
    run = timed(cmd, _env(setup.cache))
    run.update(json.loads(run.pop("output").strip().splitlines()[-1]))
    return run


def one_run(setup: Setup, side: str, n: int) -> dict[str, Any]:
    saes = setup.saes[:n]
    _reset_state(setup, saes)
    if side == "pseval_default":
        run = _pseval(setup, saes, [], f"{side}_{n}")
    elif side == "pseval_same_work":
        run = _pseval(setup, saes, SAME_WORK, f"{side}_{n}")
    else:
        run = _child(setup, saes, side)
    run.pop("output", None)
    return run


# ------------------------------------------------------------------------------------------------- children


def _truncated_model(prompts: dict[str, Any]) -> Any:
    """The model loaded with transformers, its layers after the hooked one cut off."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(prompts["model_folder"], dtype=torch.float32).eval()
    base = model.model
    base.layers = base.layers[: prompts["layer"] + 1]
    return base


def _forward_pass(
    base: Any, layer: int, ids: list[list[int]], targets: list[int], by_length: bool = False
) -> float:
    """Seconds of one forward pass over ``ids`` in batches of 32, keeping each prompt's hook vector: in the
    prompts' order (a user's script), or ``by_length`` longest first (as pseval batches them, so a batch's
    padding is least: the floor of the pass)."""
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i])) if by_length else list(range(len(ids)))
    started = time.perf_counter()
    kept: list[torch.Tensor] = []
    hook = base.layers[layer].register_forward_hook(
        lambda _m, _i, out: kept.append(out[0] if isinstance(out, tuple) else out)
    )
    rows = []
    with torch.no_grad():
        for lo in range(0, len(order), 32):
            batch = [ids[i] for i in order[lo : lo + 32]]
            width = max(len(x) for x in batch)
            input_ids = torch.tensor([x + [0] * (width - len(x)) for x in batch])
            mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch])
            kept.clear()
            base(input_ids=input_ids, attention_mask=mask)
            index = torch.tensor([targets[i] for i in order[lo : lo + 32]])
            rows.append(kept[0][torch.arange(len(batch)), index])
    hook.remove()
    return time.perf_counter() - started


def child_forward(prompts: dict[str, Any], _saes: list[Path]) -> dict[str, Any]:
    """The activation pass of the references: model load + one forward pass truncated after the hook, in the
    prompts' order (``forward_s``: the peer's) and longest first (``forward_sorted_s``: the limits'); and, timed
    apart for ``limit_default``, the held-out prompts' pass longest first when the set-up has them."""
    started = time.perf_counter()
    base = _truncated_model(prompts)
    load_s = time.perf_counter() - started
    layer, ids, targets = prompts["layer"], prompts["input_ids"], prompts["target_index"]
    out = {"model_load_s": load_s, "forward_s": _forward_pass(base, layer, ids, targets),
           "forward_sorted_s": _forward_pass(base, layer, ids, targets, by_length=True)}  # fmt: skip
    if "held_out_input_ids" in prompts:
        held_ids, held_targets = prompts["held_out_input_ids"], prompts["held_out_target_index"]
        out["forward_held_out_s"] = _forward_pass(base, layer, held_ids, held_targets, by_length=True)
    return out


def child_peer(prompts: dict[str, Any], saes: list[Path]) -> dict[str, Any]:
    """The SAEBench way: sae-lens loads each SAE, encodes the cached activations, takes the top-1."""
    acts_PD = prompts["acts"]
    started = time.perf_counter()
    from sae_lens import SAE as SAELensSAE

    imported = time.perf_counter()
    tops = []
    with torch.no_grad():
        for path in saes:
            sae = SAELensSAE.load_from_disk(str(path), device="cpu")
            feats_PF = sae.encode(acts_PD)
            tops.append(feats_PF.argmax(-1))
            del sae, feats_PF
    per_sae = time.perf_counter() - imported
    return {"sae_lens_import_s": imported - started, "per_sae_total_s": per_sae,
            "work_s": per_sae + imported - started, "n_top1": sum(len(t) for t in tops)}  # fmt: skip


class _ScoreBytes:
    """One sequential read of the bytes the score needs (``W_enc`` and the per-latent vectors) into one buffer,
    allocated and its pages touched once, off the clock, and reused for every SAE: the floor of the read (no
    allocation, no page faults: neither is part of what the disk and memory must do)."""

    def __init__(self) -> None:
        self.buffer = torch.zeros(0, dtype=torch.uint8)
        self.output = torch.zeros(0, 0)

    def prepare(self, path: Path, rows: int) -> torch.Tensor:
        """Size the buffer for ``path``'s bytes and touch its pages (call off the clock); also returns a
        touched ``[rows, d_sae]`` output buffer for the matmul (reused while the shape holds)."""
        layout, total = self._layout(path)
        if self.buffer.numel() < total:
            self.buffer = torch.zeros(total, dtype=torch.uint8)
        d_sae = next(int(e.shape[1]) for k, e, _ in layout if k.lower() == "w_enc")
        if self.output.shape != (rows, d_sae):
            self.output = torch.zeros(rows, d_sae)
        return self.output

    @staticmethod
    def _layout(path: Path) -> tuple[list[tuple[str, Any, int]], int]:
        from pseval.sae.formats._common import safetensors_header

        entries, data_start = safetensors_header(path)
        wanted = sorted(
            (k for k in entries if k.lower() in ("w_enc", *VECTORS)), key=lambda k: entries[k].begin
        )  # type: ignore[attr-defined]
        layout = [(key, entries[key], data_start) for key in wanted]
        return layout, sum(e.end - e.begin for _, e, _ in layout)  # type: ignore[attr-defined]

    def read(self, path: Path) -> dict[str, torch.Tensor]:
        from pseval.sae.lazy import read_byte_ranges

        layout, _ = self._layout(path)
        out, at = {}, 0
        for key, entry, data_start in layout:
            n = entry.end - entry.begin
            raw = read_byte_ranges(path, [(data_start + entry.begin, n)], out=self.buffer[at : at + n])
            out[key] = raw.view(entry.dtype).reshape(entry.shape)
            at += n
        return out


def child_limit(prompts: dict[str, Any], saes: list[Path]) -> dict[str, Any]:
    """The floor's per-SAE part: one sequential read of the score's bytes and one matmul per SAE (into
    buffers allocated and touched once, off the clock)."""
    acts_PD = prompts["acts"]
    reader = _ScoreBytes()
    read_s = matmul_s = 0.0
    for folder in saes:
        pre_PF = reader.prepare(_sae_file(folder), acts_PD.shape[0])
        started = time.perf_counter()
        tensors = reader.read(_sae_file(folder))
        read = time.perf_counter()
        W_enc_DF = next(t for k, t in tensors.items() if k.lower() == "w_enc")
        torch.matmul(acts_PD, W_enc_DF, out=pre_PF)
        matmul_s += time.perf_counter() - read
        read_s += read - started
        del tensors, W_enc_DF
    return {"read_s": read_s, "matmul_s": matmul_s, "work_s": read_s + matmul_s,
            "per_sae_s": (read_s + matmul_s) / len(saes)}  # fmt: skip


INTERPRET_CHUNK = 2048
"""Corpus rows per matmul of ``limit_default``'s interpretation encode (one reused output buffer)."""


def _chosen_latents(tensors: dict[str, torch.Tensor], pre_PF: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """The distinct top-1 latents of the prompts in pairs (JumpReLU codes from ``acts @ W_enc``), off the clock."""
    vec = {k.lower(): t for k, t in tensors.items()}
    W_enc_DF = vec["w_enc"]
    pre_RF = pre_PF[rows] - vec["b_dec"] @ W_enc_DF + vec["b_enc"]  # (acts - b_dec) @ W_enc + b_enc
    active_RF = pre_RF > vec["threshold"]
    top_R = pre_RF.masked_fill(~active_RF, float("-inf")).argmax(-1)
    return top_R[active_RF.any(-1)].unique()


def _read_decoder_rows(path: Path, latents: torch.Tensor) -> torch.Tensor:
    """The decoder rows of ``latents`` (sorted), one read each: the bytes the logit lens needs."""
    from pseval.sae.formats._common import safetensors_header
    from pseval.sae.lazy import read_byte_ranges

    entries, data_start = safetensors_header(path)
    entry = next(e for k, e in entries.items() if k.lower() == "w_dec")
    row_bytes = (entry.end - entry.begin) // entry.shape[0]  # type: ignore[attr-defined]
    start = data_start + entry.begin  # type: ignore[attr-defined]
    raw = read_byte_ranges(path, [(start + int(i) * row_bytes, row_bytes) for i in latents.tolist()])
    return raw.view(entry.dtype).reshape(len(latents), -1)  # type: ignore[attr-defined]


class _Laps:
    """Seconds summed by part: ``lap(part)`` adds the time since the last lap (or restart) to ``part``."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._since = time.perf_counter()

    def restart(self) -> Callable[[str], None]:
        self._since = time.perf_counter()
        return self.lap

    def lap(self, part: str) -> None:
        now = time.perf_counter()
        self.seconds[part] = self.seconds.get(part, 0.0) + now - self._since
        self._since = now


def child_limit_default(prompts: dict[str, Any], saes: list[Path]) -> dict[str, Any]:
    """The floor of a default eval's per-SAE part (the module docstring lists what it includes and leaves out)."""
    acts_PD, rows = prompts["acts"], prompts["pair_rows"]
    d_in = acts_PD.shape[1]
    gen = torch.Generator().manual_seed(0)
    # Off the clock: inputs pseval reads or already holds (corpus rows, the model's unembedding).
    corpus_ND = torch.randn(prompts["interpret_tokens"], d_in, generator=gen)
    unembed_VD = torch.randn(prompts["vocab_size"], d_in, generator=gen)
    laps = _Laps()
    n_latents = []
    codes_NF = random_DF = random_PF = torch.empty(0, 0)
    reader = _ScoreBytes()
    for folder in saes:
        pre_PF = reader.prepare(_sae_file(folder), acts_PD.shape[0])  # off the clock
        lap = laps.restart()
        tensors = reader.read(_sae_file(folder))
        lap("read_s")
        W_enc_DF = next(t for k, t in tensors.items() if k.lower() == "w_enc")
        torch.matmul(acts_PD, W_enc_DF, out=pre_PF)
        lap("matmul_prompts_s")
        latents = _chosen_latents(tensors, pre_PF, rows)
        n_latents.append(len(latents))
        if codes_NF.shape[1] != W_enc_DF.shape[1]:  # output buffers, their pages touched once
            codes_NF = torch.zeros(min(INTERPRET_CHUNK, corpus_ND.shape[0]), W_enc_DF.shape[1])
            random_DF, random_PF = torch.zeros(W_enc_DF.shape), torch.zeros(pre_PF.shape)
        lap = laps.restart()  # the chosen latents and the buffers are off the clock
        W_dec_LD = _read_decoder_rows(_sae_file(folder), latents)
        lap("read_decoder_rows_s")
        for lo in range(0, corpus_ND.shape[0], INTERPRET_CHUNK):
            chunk_ND = corpus_ND[lo : lo + INTERPRET_CHUNK]
            torch.matmul(chunk_ND, W_enc_DF, out=codes_NF[: chunk_ND.shape[0]])
        lap("matmul_interpret_s")
        bound = (6.0 / d_in) ** 0.5  # as pseval draws its random control: uniform in [-bound, bound)
        torch.rand(W_enc_DF.shape, generator=gen, out=random_DF).mul_(2).sub_(1).mul_(bound)
        lap("random_draw_s")
        torch.matmul(acts_PD, random_DF, out=random_PF)
        lap("matmul_random_s")
        logits_LV = W_dec_LD.float() @ unembed_VD.T
        lap("matmul_logit_lens_s")
        del tensors, W_enc_DF, logits_LV, W_dec_LD
    parts = laps.seconds
    work_s = sum(parts.values())
    return {**parts, "work_s": work_s, "per_sae_s": work_s / len(saes), "n_logit_lens_latents": n_latents,
            "interpret_tokens": int(corpus_ND.shape[0])}  # fmt: skip


CHILDREN = {"forward": child_forward, "peer": child_peer, "limit": child_limit,
            "limit_default": child_limit_default}  # fmt: skip


# ------------------------------------------------------------------------------------------------- report


def _summary(runs: list[dict[str, Any]], key: str = "seconds") -> dict[str, float]:
    values = [r[key] for r in runs]
    return {"min": round(min(values), 3), "median": round(statistics.median(values), 3), "n": len(values)}


def _ratio(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {"median": round(a["median"] / b["median"], 3), "min": round(a["min"] / b["min"], 3)}


def _rounded(run: dict[str, Any]) -> dict[str, Any]:
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in run.items()}


def _marginal(s: dict[str, dict[str, float]], side: str, n_many: int) -> dict[str, float]:
    """Seconds of each SAE after the first: (``n_many`` SAEs - 1 SAE) / (``n_many`` - 1), of medians and minima."""
    many, one = s[f"{side}_{n_many}"], s[f"{side}_1"]
    return {q: (many[q] - one[q]) / max(1, n_many - 1) for q in ("min", "median")}


def _goal(figure: str, ours: dict[str, float], ref: dict[str, float], ref_name: str, goal: float,
          unit: str = "s") -> dict[str, Any]:  # fmt: skip
    ratio = _ratio(ours, ref)
    return {"figure": figure, "pseval": round(ours["median"], 3), "reference": ref_name,
            "reference_value": round(ref["median"], 3), "unit": unit, "ratio_median": ratio["median"],
            "ratio_min": ratio["min"], "goal_max": goal, "met": ratio["median"] <= goal}  # fmt: skip


def goals(
    s: dict[str, dict[str, float]], runs: dict[str, list[dict[str, Any]]], n_many: int,
    rss: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:  # fmt: skip
    """Every goal of the benchmark: pseval's figure, its reference, the ratio (medians; minima), met by the median."""
    one, many = "pseval_same_work_1", f"pseval_same_work_{n_many}"
    rows = [
        _goal("1 SAE, defaults", s["pseval_default_1"], s["limit_default_1"], "limit_default", 2.0),
        _goal(f"+1 SAE of {n_many}, same work", _marginal(s, "pseval_same_work", n_many),
              _summary(runs[f"limit_{n_many}"], "per_sae_s"), "limit/SAE", 1.5),
    ]  # fmt: skip
    if f"pseval_default_{n_many}" in s:
        rows.append(_goal(f"+1 SAE of {n_many}, defaults", _marginal(s, "pseval_default", n_many),
                          _summary(runs[f"limit_default_{n_many}"], "per_sae_s"), "limit_def/SAE", 1.5))  # fmt: skip
    return [
        *rows,
        _goal("1 SAE, same work", s[one], s["peer_1"], "peer", 1.0),
        _goal(f"{n_many} SAEs, same work", s[many], s[f"peer_{n_many}"], "peer", 0.8),
        _goal(f"peak RSS, {n_many} vs 1 SAE", rss[many], rss[one], "1 SAE", 1.15, unit="MiB"),
    ]


def _ratio_text(value: float) -> str:
    """A ratio in at most 6 characters (quick runs, whose figures mean nothing, give any ratio at all)."""
    if abs(value) >= 1000:
        return f"{value:.0e}"
    return f"{value:.{2 if abs(value) < 10 else 1 if abs(value) < 100 else 0}f}"


def _value(value: float, unit: str) -> str:
    if unit == "MiB":
        return f"{value:.0f} MiB"
    return f"{value:.{0 if abs(value) >= 1000 else 1 if abs(value) >= 10 else 2}f} s"


def goals_table(rows: list[dict[str, Any]]) -> str:
    """The goals as a table of at most 80 columns."""
    line = "{:<23} {:>9} {:<20} {:>12} {:>6} {}"
    out = [line.format("figure", "pseval", "reference", "ratio", "goal", "met"),
           line.format("", "(median)", "(median)", "(med; min)", "", "")]  # fmt: skip
    for row in rows:
        reference = f"{row['reference']} {_value(row['reference_value'], row['unit'])}"
        ratio = f"{_ratio_text(row['ratio_median'])}; {_ratio_text(row['ratio_min'])}"
        out.append(line.format(row["figure"], _value(row["pseval"], row["unit"]), reference, ratio,
                               f"<={row['goal_max']:g}", "yes" if row["met"] else "no"))  # fmt: skip
    return "\n".join(row.rstrip() for row in out)


def disk_read_per_extra_sae(runs: dict[str, list[dict[str, Any]]], n_many: int) -> dict[str, float]:
    """MiB each side made the kernel fetch from storage per SAE after the first (medians): what it read of
    each SAE file (the files are dropped from the page cache before every run; the model's stay cached)."""
    out = {}
    for side in ("pseval_same_work", "peer", "limit"):
        one, many = runs.get(f"{side}_1", []), runs.get(f"{side}_{n_many}", [])
        if one and many and "disk_read_mib" in one[0]:
            medians = [statistics.median(r["disk_read_mib"] for r in rs) for rs in (one, many)]
            out[side] = round((medians[1] - medians[0]) / max(1, n_many - 1), 1)
    return out


def goals_markdown(result: dict[str, Any]) -> str:
    """The goals of a stored result as the Markdown table the README and docs/performance.md quote (a test
    checks that they quote it as this function writes it)."""
    out = ["| goal | pseval (median) | reference (median) | ratio (median; min) | goal | met |",
           "|---|---|---|---|---|---|"]  # fmt: skip
    for row in result["goals"]:
        reference = f"{row['reference']} {_value(row['reference_value'], row['unit'])}"
        out.append(f"| {row['figure']} | {_value(row['pseval'], row['unit'])} | {reference} | "
                   f"**{row['ratio_median']:.2f}×** ({row['ratio_min']:.2f}×) | ≤ {row['goal_max']:g}× | "
                   f"{'yes' if row['met'] else 'no'} |")  # fmt: skip
    return "\n".join(out)


def report(setup: Setup, runs: dict[str, list[dict[str, Any]]], n_many: int) -> dict[str, Any]:
    s = {name: _summary(rs) for name, rs in runs.items()}
    limit_per_sae = _summary(runs[f"limit_{n_many}"], "per_sae_s")
    one, many = "pseval_same_work_1", f"pseval_same_work_{n_many}"
    marginal = _marginal(s, "pseval_same_work", n_many)
    ratios = {
        "default_1_vs_limit_default_1": _ratio(s["pseval_default_1"], s["limit_default_1"]),
        "default_1_vs_limit_1": _ratio(s["pseval_default_1"], s["limit_1"]),
        "same_work_1_vs_limit_1": _ratio(s[one], s["limit_1"]),
        f"same_work_{n_many}_vs_limit_{n_many}": _ratio(s[many], s[f"limit_{n_many}"]),
        "same_work_per_extra_sae_vs_limit_per_sae": _ratio(marginal, limit_per_sae),
        "same_work_1_vs_peer_1": _ratio(s[one], s["peer_1"]),
        f"same_work_{n_many}_vs_peer_{n_many}": _ratio(s[many], s[f"peer_{n_many}"]),
    }
    if f"pseval_default_{n_many}" in s:
        ratios[f"default_{n_many}_vs_limit_default_{n_many}"] = _ratio(
            s[f"pseval_default_{n_many}"], s[f"limit_default_{n_many}"]
        )
        ratios[f"default_{n_many}_vs_limit_{n_many}"] = _ratio(
            s[f"pseval_default_{n_many}"], s[f"limit_{n_many}"]
        )
    rss = {name: _summary(rs, "peak_rss_mib") for name, rs in runs.items() if name.startswith("pseval")}
    parts = ("model_load_s", "forward_s", "forward_sorted_s", "forward_held_out_s", "read_s", "matmul_s",
             "matmul_prompts_s", "read_decoder_rows_s", "matmul_interpret_s", "random_draw_s", "matmul_random_s",
             "matmul_logit_lens_s", "sae_lens_import_s", "per_sae_total_s")  # fmt: skip
    machine = {"platform": platform.platform(), "cpus": os.cpu_count(), "torch": torch.__version__,
               "torch_threads": torch.get_num_threads(), "load_average_at_end": os.getloadavg()}  # fmt: skip
    parts_s = setup.info.get("score_sae_seconds", {})
    default_s = s["pseval_default_1"]["median"]
    shares = {
        f"{part}_share_of_default_eval_1": round((parts_s["defaults"] - parts_s[f"no_{part}"]) / default_s, 3)
        for part in ("interpret", "bootstrap")
        if f"no_{part}" in parts_s
    }
    return {
        "benchmark": "bench_scale",
        "what": "pseval eval end to end (subprocess, SAE files cold in the page cache) vs limit and peer",
        "machine": machine,
        "model": SMOLLM,
        "hook": HOOK,
        "d_sae": setup.width,
        "n_saes_many": n_many,
        "max_pairs": setup.max_pairs,
        "pseval_extra_args": setup.extra,
        **setup.info,
        "seconds": s,
        "ratios": ratios,
        "ratio_references": {
            "limit": "the floor of the same work (--no-baselines --interpret-tokens 0 --logit-lens-tokens 0 "
            "--bootstrap 0): less work than the defaults do, so default_*_vs_limit_* is not like with like",
            "limit_default": "the floor of the defaults' work (held-out forward pass, interpretation encode, "
            "random control, logit lens): what default_*_vs_limit_default_* and the defaults' goal use",
        },
        "goals": goals(s, runs, n_many, rss),
        "default_eval_shares": shares,
        "pseval_per_extra_sae_seconds": {q: round(v, 3) for q, v in marginal.items()},
        "limit_per_sae_seconds": limit_per_sae,
        "peak_rss_mib": rss,
        "peak_rss_ratio_many_vs_one": round(rss[many]["median"] / rss[one]["median"], 3),
        "disk_read_mib_per_extra_sae": disk_read_per_extra_sae(runs, n_many),
        "parts_median_s": {
            name: {part: round(statistics.median(r[part] for r in rs), 3) for part in parts if part in rs[0]}
            for name, rs in runs.items()
        },
        "runs": {name: [_rounded(r) for r in rs] for name, rs in runs.items()},
    }


def _compose(run: dict[str, Any], forward: dict[str, Any], side: str) -> dict[str, Any]:
    """A reference's total: the shared activation pass of its round plus its own per-SAE work."""
    run = {**run, "child_wall_s": run["seconds"]}
    if side == "peer":  # a user's one script: its start, imports, model load, forward, then the SAEs
        # (not the passes the forward child also times for the limits: sorted, held-out)
        limits_only = forward.get("forward_held_out_s", 0.0) + forward.get("forward_sorted_s", 0.0)
        run["seconds"] = forward["seconds"] - limits_only + run["work_s"]
        run["forward_s"] = forward["forward_s"]
    else:  # the floor: model load + forward (longest first) + reads + matmuls, no interpreter start or imports
        run["seconds"] = forward["model_load_s"] + forward["forward_sorted_s"] + run["work_s"]
        run["forward_sorted_s"] = forward["forward_sorted_s"]
    run["model_load_s"] = forward["model_load_s"]
    if side == "limit_default":  # the defaults also run the model on the held-out split
        run["seconds"] += forward["forward_held_out_s"]
        run["forward_held_out_s"] = forward["forward_held_out_s"]
    return run


def run_all(
    setup: Setup, n_many: int, repeats: int, with_default_many: bool, out: Path | None = None
) -> dict[str, Any]:
    sides = [("pseval_default", 1), ("pseval_same_work", 1), ("forward", 0), ("peer", 1), ("limit", 1),
             ("limit_default", 1), ("pseval_same_work", n_many), ("peer", n_many), ("limit", n_many)]  # fmt: skip
    if with_default_many:
        sides += [("pseval_default", n_many), ("limit_default", n_many)]
    runs: dict[str, list[dict[str, Any]]] = {f"{side}_{n}": [] for side, n in sides}
    for rep in range(repeats):
        for side, n in sides:  # interleaved: every side once per round
            run = one_run(setup, side, n)
            if side in ("peer", "limit", "limit_default"):
                run = _compose(run, runs["forward_0"][-1], side)
            runs[f"{side}_{n}"].append(run)
            print(f"round {rep + 1}/{repeats} {side}_{n}: {run['seconds']:.1f} s, "
                  f"{run['peak_rss_mib']:.0f} MiB", file=sys.stderr, flush=True)  # fmt: skip
        if "score_sae_seconds" not in setup.info:  # after the first round: the figures come first
            setup.info["score_sae_seconds"] = score_parts(setup)
        if out is not None:  # every finished round, so a run cut short keeps what it measured
            out.write_text(
                json.dumps({**report(setup, runs, n_many), "rounds_done": rep + 1}, indent=2) + "\n"
            )
    return report(setup, runs, n_many)


def rss_only(saes_dir: Path, n_many: int, max_pairs: int | None, repeats: int) -> dict[str, Any]:
    """Peak RSS of ``pseval eval`` (same-work flags) on 1 and on ``n_many`` SAEs already written, interleaved."""
    saes = sorted(p for p in saes_dir.iterdir() if p.is_dir())[:n_many]
    with tempfile.TemporaryDirectory(prefix="pseval-bench-rss-", dir="/tmp") as tmp:
        root = Path(tmp)
        setup = Setup(root, _private_cache(root), saes, WIDTH, max_pairs)
        runs: dict[str, list[dict[str, Any]]] = {
            "pseval_same_work_1": [],
            f"pseval_same_work_{len(saes)}": [],
        }
        for _ in range(repeats):
            for n in (1, len(saes)):
                run = one_run(setup, "pseval_same_work", n)
                runs[f"pseval_same_work_{n}"].append(run)
                print(
                    f"rss {n}: {run['seconds']:.1f} s, {run['peak_rss_mib']:.0f} MiB",
                    file=sys.stderr,
                    flush=True,
                )
    rss = {name: _summary(rs, "peak_rss_mib") for name, rs in runs.items()}
    one, many = rss["pseval_same_work_1"], rss[f"pseval_same_work_{len(saes)}"]
    return {"peak_rss_mib": rss, "peak_rss_ratio_many_vs_one": round(many["median"] / one["median"], 3),
            "seconds": {name: _summary(rs) for name, rs in runs.items()}, "max_pairs": max_pairs,
            "runs": {name: [_rounded(r) for r in rs] for name, rs in runs.items()}}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="width 2,048, 2 SAEs, 16 pairs, one round")
    parser.add_argument("--n-saes", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--width", type=int, default=WIDTH)
    parser.add_argument("--max-pairs", type=int, default=None)
    parser.add_argument("--default-many", action="store_true", help="also time the defaults on --n-saes SAEs")
    parser.add_argument("--reuse-saes", type=Path, default=None, metavar="SAES_DIR",
                        help="score SAEs an earlier run wrote (a copy of its saes/ folder) instead of new ones")  # fmt: skip
    parser.add_argument("--rss-only", type=Path, default=None, metavar="SAES_DIR",
                        help="only the peak RSS of 1 and --n-saes SAEs already written in SAES_DIR")  # fmt: skip
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON here")
    parser.add_argument("--markdown", type=Path, default=None, metavar="JSON",
                        help="print the goals of a stored result as the docs' Markdown table, and stop")  # fmt: skip
    parser.add_argument("--child", choices=sorted(CHILDREN), default=None, help=argparse.SUPPRESS)
    parser.add_argument("--prompts", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--sae", type=Path, action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.markdown is not None:
        print(goals_markdown(json.loads(args.markdown.read_text())))
        return
    if args.child is not None:
        prompts = torch.load(args.prompts)
        print(json.dumps(CHILDREN[args.child](prompts, args.sae)))
        return
    extra: list[str] = []
    if args.quick:
        args.n_saes, args.repeats, args.width, args.max_pairs = 2, 1, 2048, args.max_pairs or 16
        extra = ["--interpret-tokens", "512", "--bootstrap", "200"]
    if args.rss_only is not None:
        result = rss_only(args.rss_only, args.n_saes, args.max_pairs, args.repeats)
        print(json.dumps(result, indent=2))
        if args.out is not None:
            args.out.write_text(json.dumps(result, indent=2) + "\n")
        return
    with tempfile.TemporaryDirectory(prefix="pseval-bench-scale-", dir="/tmp") as tmp:
        setup = prepare(Path(tmp), args.n_saes, args.width, args.max_pairs, extra, args.reuse_saes)
        result = run_all(setup, args.n_saes, args.repeats, args.default_many, args.out)
    text = json.dumps(result, indent=2)
    print(text)
    print(goals_table(result["goals"]))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
