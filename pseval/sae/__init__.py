"""SAEs: configs per architecture, the SAE module, and readers/writers for the common file formats."""

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
from pseval.sae.model import SAE

__all__ = [
    "ARCHITECTURES",
    "FORMATS",
    "SAE",
    "SAE_CONFIGS",
    "BatchTopKSAEConfig",
    "GatedSAEConfig",
    "JumpReLUSAEConfig",
    "SAEConfig",
    "StandardSAEConfig",
    "TopKSAEConfig",
    "config_from_dict",
    "detect_format",
    "load_sae",
    "save_sae",
    "write_dictionary_learning",
    "write_gemma_scope",
    "write_sparsify",
]
