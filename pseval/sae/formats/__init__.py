"""Reading and writing SAEs in the formats of the main SAE libraries and public releases.

One module per format, each registered by name in :data:`FORMAT_REGISTRY` (as SAELens registers its
converters): SAELens 6.x and pre-6 folders, EleutherAI sparsify, dictionary_learning (Matryoshka BatchTopK
included), Gemma Scope (``params.npz``), Gemma Scope 2 (``params.safetensors`` + ``config.json``), Llama Scope
(``hyperparams.json`` + checkpoints) and Qwen-Scope (``layer{n}.sae.pt``); transcoders are read on their
encoder side. A new format is one module calling :func:`register_format`, imported below.

Tensor orientation is checked against ``d_in``/``d_sae`` and transposed when a file stores a matrix the
other way round; shapes that fit neither way are refused. ``save_sae`` writes SAELens 6.x, which
``sae_lens.SAE.load_from_disk`` reads back to the same latents; the other writers exist so that every
reader can be tested and so that users can hand SAEs to those libraries.
"""

from pseval.sae.formats import (  # noqa: F401  (importing a format module registers it)
    circuit_tracer,
    dictionary_learning,
    gemma_scope,
    gemma_scope_2,
    gemma_scope_2_clt,
    llama_scope,
    qwen_scope,
    saelens,
    sparsify,
)
from pseval.sae.formats._common import assemble as _assemble
from pseval.sae.formats._registry import (
    FORMAT_REGISTRY,
    ReleaseContext,
    ReleaseFiles,
    SAEFormat,
    register_format,
)
from pseval.sae.formats.dictionary_learning import write_dictionary_learning
from pseval.sae.formats.gemma_scope import write_gemma_scope
from pseval.sae.formats.hooks import (
    dl_submodule_to_hook,
    gemma_scope_2_hooks,
    hf_module_to_hook,
    hook_to_dl_submodule,
    hook_to_hf_module,
)
from pseval.sae.formats.loader import detect_format, load_sae
from pseval.sae.formats.saelens import saelens_cfg_dict, save_sae
from pseval.sae.formats.sparsify import write_sparsify

FORMATS: tuple[str, ...] = tuple(FORMAT_REGISTRY)

__all__ = [
    "FORMATS",
    "FORMAT_REGISTRY",
    "ReleaseContext",
    "ReleaseFiles",
    "SAEFormat",
    "_assemble",
    "detect_format",
    "dl_submodule_to_hook",
    "gemma_scope_2_hooks",
    "hf_module_to_hook",
    "hook_to_dl_submodule",
    "hook_to_hf_module",
    "load_sae",
    "register_format",
    "saelens_cfg_dict",
    "save_sae",
    "write_dictionary_learning",
    "write_gemma_scope",
    "write_sparsify",
]
