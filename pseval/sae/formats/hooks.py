"""Hook names: TransformerLens-style names from the module paths and folder names each release uses."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

_HF_LAYER = r"(?:model\.|transformer\.|gpt_neox\.)?(?:layers|h|blocks|layer)\.(\d+)"


def hf_module_to_hook(module: str) -> str | None:
    """TransformerLens hook for a Hugging Face module path as sparsify names its folders, or None.

    sparsify hooks a module's output: ``layers.N`` is the residual stream after block N.
    """
    if re.fullmatch(r"(?:model\.|transformer\.|gpt_neox\.)?(?:embed_tokens|wte|embed_in)", module):
        return "hook_embed"
    match = re.fullmatch(_HF_LAYER + r"(?:\.(mlp|self_attn|attn|attention))?", module)
    if match is None:
        return None
    layer, sub = match.group(1), match.group(2)
    if sub is None:
        return f"blocks.{layer}.hook_resid_post"
    if sub == "mlp":
        return f"blocks.{layer}.hook_mlp_out"
    return f"blocks.{layer}.hook_attn_out"


def hf_module_input_to_hook(module: str) -> str | None:
    """TransformerLens hook for the *input* of a Hugging Face module (what a sparsify transcoder reads)."""
    match = re.fullmatch(_HF_LAYER + r"(?:\.(mlp|self_attn|attn|attention))?", module)
    if match is None:
        return None
    layer, sub = match.group(1), match.group(2)
    if sub is None:
        return f"blocks.{layer}.hook_resid_pre"
    if sub == "mlp":
        return f"blocks.{layer}.hook_mlp_in"
    return None


def hook_to_hf_module(hook_name: str | None) -> str | None:
    """The sparsify folder name (Hugging Face module path) for a TransformerLens hook, where one exists."""
    if hook_name is None:
        return None
    if hook_name == "hook_embed":
        return "embed_tokens"
    match = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|mlp_out|attn_out)", hook_name)
    if match is None:
        return None
    layer, kind = match.groups()
    return {
        "resid_post": f"layers.{layer}",
        "mlp_out": f"layers.{layer}.mlp",
        "attn_out": f"layers.{layer}.self_attn",
    }[kind]


def dl_submodule_to_hook(submodule_name: str | None, layer: int | None) -> str | None:
    """TransformerLens hook for a dictionary_learning ``submodule_name`` (+ ``layer``), or None."""
    if not submodule_name:
        return None
    if re.fullmatch(r"blocks\.\d+\.\S+|hook_embed", submodule_name):
        return submodule_name
    if submodule_name in ("embed", "embedding", "embed_tokens"):
        return "hook_embed"
    match = re.fullmatch(
        r"(resid_post|resid_pre|resid|mlp_out|mlp|attn_out|attn|attention)(?:_layer_?(\d+))?", submodule_name
    )
    if match is None:
        return None
    kind, num = match.group(1), match.group(2)
    index = int(num) if num is not None else layer
    if index is None:
        return None
    hook = {
        "resid_post": "hook_resid_post",
        "resid": "hook_resid_post",
        "resid_pre": "hook_resid_pre",
        "mlp_out": "hook_mlp_out",
        "mlp": "hook_mlp_out",
        "attn_out": "hook_attn_out",
        "attn": "hook_attn_out",
        "attention": "hook_attn_out",
    }[kind]
    return f"blocks.{index}.{hook}"


def hook_to_dl_submodule(hook_name: str | None) -> tuple[str | None, int | None]:
    """dictionary_learning ``(submodule_name, layer)`` for a TransformerLens hook."""
    if hook_name is None:
        return None, None
    if hook_name == "hook_embed":
        return "embed", 0
    match = re.fullmatch(r"blocks\.(\d+)\.hook_(resid_post|resid_pre|mlp_out|attn_out)", hook_name)
    if match is None:
        return hook_name, None
    layer, kind = int(match.group(1)), match.group(2)
    return f"{kind}_layer_{layer}", layer


_GEMMA_SCOPE_REPO = re.compile(r"gemma-scope-(\d+b)-(pt|it)-(res|mlp|att)\b")


def _gemma_scope_release_parts(path: Path) -> tuple[re.Match[str] | None, list[str]]:
    """The Gemma Scope repo name in ``path`` and the path parts below it (all parts when no repo is named)."""
    # absolute(), not resolve(): in a Hugging Face cache the files are symlinks to content-addressed blobs
    parts = list(path.absolute().parts)
    for i in range(len(parts) - 1, -1, -1):
        repo = _GEMMA_SCOPE_REPO.search(parts[i])
        if repo is not None:
            return repo, parts[i + 1 :]
    return None, parts


def is_gemma_scope_embedding(path: Path) -> bool:
    """Whether ``path`` lies in a Gemma Scope ``embedding/`` folder (``gemma-scope-2b-pt-res/embedding/width_4k/...``).

    When the path names the release's repo, only the folders below it count, so a parent folder of the user's
    named ``embedding`` does not make a residual-stream SAE an embedding one.
    """
    _, below = _gemma_scope_release_parts(path)
    return "embedding" in below


def gemma_scope_hook(path: Path) -> tuple[str | None, str | None]:
    """(hook_name, model_name) from a Gemma Scope path such as ``gemma-scope-2b-pt-res/layer_12/width_16k/...``."""
    repo, below = _gemma_scope_release_parts(path)
    layers = [m for m in (re.fullmatch(r"layer_(\d+)", part) for part in below) if m is not None]
    if repo is None:
        return None, None
    size, flavour, kind = repo.groups()
    model = f"gemma-2-{size}" + ("-it" if flavour == "it" else "")
    if "embedding" in below and kind == "res":
        return "hook_embed", model
    if layers:
        suffix = {"res": "hook_resid_post", "mlp": "hook_mlp_out", "att": "attn.hook_z"}[kind]
        return f"blocks.{layers[-1].group(1)}.{suffix}", model
    return None, model


_GEMMA_SCOPE_2_SITES: dict[str, tuple[str, str | None]] = {
    # site folder -> (hook read by the encoder, hook the decoder writes for transcoders)
    "resid_post": ("hook_resid_post", None),
    "attn_out": ("attn.hook_z", None),
    "mlp_out": ("hook_mlp_out", None),
    "transcoder": ("hook_mlp_in", "hook_mlp_out"),
}
_GEMMA_SCOPE_2_HF_IN: dict[str, str] = {
    "output": "resid_post",
    "self_attn.o_proj.input": "attn_out",
    "post_feedforward_layernorm.output": "mlp_out",
    "pre_feedforward_layernorm.output": "transcoder",
}


def gemma_scope_2_hooks(folder: Path, hf_hook_point_in: str | None = None) -> tuple[str | None, str | None]:
    """(hook_name, hook_name_out) of a Gemma Scope 2 SAE, from its folder path as sae-lens derives them.

    ``resid_post/layer_12_width_16k_l0_small`` -> ``blocks.12.hook_resid_post``; ``attn_out`` ->
    ``blocks.L.attn.hook_z``; ``mlp_out`` -> ``blocks.L.hook_mlp_out``; transcoders read
    ``blocks.L.hook_mlp_in`` and write ``blocks.L.hook_mlp_out``. When the path names no site, the config's
    ``hf_hook_point_in`` (``model.layers.L.<module>``) decides.
    """
    text = f"{folder.parent.name}/{folder.name}"
    layer = re.search(r"layer_(\d+)", folder.name)
    site: str | None = None
    if "transcoder" in text or "clt" in text:
        site = "transcoder"
    else:
        site = next((s for s in ("resid_post", "attn_out", "mlp_out") if s in text), None)
    if (site is None or layer is None) and hf_hook_point_in:
        match = re.fullmatch(r"(?:model\.)?layers\.(\d+)\.(.+)", hf_hook_point_in)
        if match is not None:
            site = site or _GEMMA_SCOPE_2_HF_IN.get(match.group(2))
            layer = layer or match
    if site is None or layer is None:
        return None, None
    hook_in, hook_out = _GEMMA_SCOPE_2_SITES[site]
    n = layer.group(1)
    return f"blocks.{n}.{hook_in}", (f"blocks.{n}.{hook_out}" if hook_out else None)


def gemma_3_model_name(raw: str | None) -> str | None:
    """The Hugging Face model id of a Gemma Scope 2 ``model_name`` (``gemma-v3-270m-pt`` -> ``google/gemma-3-270m``),
    spelled as sae-lens spells it."""
    if not raw:
        return None
    name = raw if "google" in raw else "google/" + raw
    name = name.replace("-v3", "-3")
    if "270m" in name:
        name = name.replace("-pt", "")
    return name


_GEMMA_SCOPE_2_REPO = re.compile(r"gemma-scope-2-(\d+(?:\.\d+)?[mb])-(pt|it)\b")
_GEMMA_SCOPE_2_HF_OUT = "post_feedforward_layernorm.output"  # what a transcoder's decoder writes
_GEMMA_SCOPE_2_SITE_HF_IN = {site: module for module, site in _GEMMA_SCOPE_2_HF_IN.items()}


def infer_gemma_scope_2_config(folder: Path) -> dict[str, Any]:
    """The ``config.json`` of a Gemma Scope 2 folder that ships none, inferred from its path as sae-lens's
    ``_infer_gemma_3_raw_cfg_dict`` does: the model from the repo name (``gemma-scope-2-1b-it`` ->
    ``google/gemma-3-1b-it``), the Hugging Face hook points from the site folder and the layer. Fields the path
    does not give are left out (no repo name: no model; no site or layer: no hook points)."""
    cfg: dict[str, Any] = {"architecture": "jump_relu"}
    # absolute(), not resolve(): in a Hugging Face cache the files are symlinks to content-addressed blobs
    repo = next(
        (m for part in reversed(folder.absolute().parts) if (m := _GEMMA_SCOPE_2_REPO.search(part))), None
    )
    if repo is not None:
        cfg["model_name"] = gemma_3_model_name(f"google/gemma-3-{repo.group(1)}-{repo.group(2)}")
    text = f"{folder.parent.name}/{folder.name}"
    layer = re.search(r"layer_(\d+)", folder.name)
    transcoder = "transcoder" in text or "clt" in text
    site = (
        "transcoder"
        if transcoder
        else next((s for s in ("resid_post", "attn_out", "mlp_out") if s in text), None)
    )
    if layer is not None and site is not None:
        prefix = f"model.layers.{layer.group(1)}."
        cfg["hf_hook_point_in"] = prefix + _GEMMA_SCOPE_2_SITE_HF_IN[site]
        if transcoder:
            cfg["hf_hook_point_out"] = prefix + _GEMMA_SCOPE_2_HF_OUT
    if transcoder:
        cfg["affine_connection"] = "affine" in folder.name
    return cfg
