"""SAEs: one registered class per architecture (its config and encode kernel), the SAE module, readers/writers
for the common file and release formats, and cheap opening (``open_sae``: config and tensor headers first,
weights later)."""

from pseval.sae.architectures import SAEArchitecture, architecture_of, register_architecture
from pseval.sae.config import (
    ARCHITECTURES,
    SAE_CONFIGS,
    BatchTopKSAEConfig,
    GatedSAEConfig,
    JumpReLUSAEConfig,
    SAEConfig,
    StandardSAEConfig,
    TopKSAEConfig,
    config_from_dict,
)
from pseval.sae.formats import (
    FORMATS,
    detect_format,
    load_sae,
    save_sae,
    write_dictionary_learning,
    write_gemma_scope,
    write_sparsify,
)
from pseval.sae.formats._common import is_transcoder
from pseval.sae.formats.loader import open_sae
from pseval.sae.model import SAE
from pseval.sae.source import SAESource, TensorRef

__all__ = [
    "ARCHITECTURES",
    "FORMATS",
    "SAE",
    "SAE_CONFIGS",
    "BatchTopKSAEConfig",
    "GatedSAEConfig",
    "JumpReLUSAEConfig",
    "SAEArchitecture",
    "SAEConfig",
    "SAESource",
    "StandardSAEConfig",
    "TensorRef",
    "TopKSAEConfig",
    "architecture_of",
    "config_from_dict",
    "detect_format",
    "is_transcoder",
    "load_sae",
    "open_sae",
    "register_architecture",
    "save_sae",
    "write_dictionary_learning",
    "write_gemma_scope",
    "write_sparsify",
]
