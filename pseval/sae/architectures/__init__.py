"""SAE architectures: one registered class per architecture, holding its config class and encode kernel.

Adding an architecture is one module: a config class (a :class:`~pseval.sae.config.SAEConfig` subclass
naming its per-latent parameters), an :class:`SAEArchitecture` subclass with its kernel, and a call to
:func:`register_architecture`; importing the module makes the architecture loadable, encodable and
scorable block by block.
"""

from pseval.sae.architectures import batchtopk, gated, jumprelu, standard, topk
from pseval.sae.architectures.base import (
    ARCHITECTURE_CLASSES,
    Block,
    NormState,
    SAEArchitecture,
    architecture_of,
    check_width,
    normalize_input,
    register_architecture,
    sae_input,
)
from pseval.sae.architectures.batchtopk import BatchTopKSAE, batch_topk_activation
from pseval.sae.architectures.gated import GatedSAE, gated_activation
from pseval.sae.architectures.jumprelu import JumpReLUSAE, jumprelu_activation
from pseval.sae.architectures.standard import StandardSAE
from pseval.sae.architectures.topk import TopKSAE, topk_activation

__all__ = [
    "ARCHITECTURE_CLASSES",
    "BatchTopKSAE",
    "Block",
    "GatedSAE",
    "JumpReLUSAE",
    "NormState",
    "SAEArchitecture",
    "StandardSAE",
    "TopKSAE",
    "architecture_of",
    "batch_topk_activation",
    "batchtopk",
    "check_width",
    "gated",
    "gated_activation",
    "jumprelu",
    "jumprelu_activation",
    "normalize_input",
    "register_architecture",
    "sae_input",
    "standard",
    "topk",
    "topk_activation",
]
