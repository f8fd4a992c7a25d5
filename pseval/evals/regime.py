"""The input regime of an SAE: how its prompts are tokenised (BOS or not) and how its activations are processed.

An SAE is only meaningful on inputs like those it was trained on. Two things vary between releases:

- **BOS.** pseval's trainer (like SAELens) starts every training context with BOS; published PS-Eval code
  prepends it too; SmolLM2's tokenizer adds none by default. Each SAE is evaluated with the ``prepend_bos``
  its config records (``--prepend-bos/--no-prepend-bos`` overrides it for every SAE). pseval-trained SAEs
  that predate recording it (``prepend_bos: null``) were trained on BOS-prefixed contexts, so they get BOS
  too, with the trainer's token (the tokenizer's BOS, else its EOS).
- **Activation processing.** SAEs trained on a processed TransformerLens model (e.g.
  ``center_writing_weights``) expect the activations that model gives
  (:mod:`pseval.models.processing`).

SAEs whose regimes give the same token ids share one prompt set and one activation pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig

PSEVAL_TRAINED = "pseval"
"""``metadata["trained_with"]`` of the SAEs pseval's trainer writes."""


@dataclass(frozen=True)
class InputRegime:
    """How one SAE's prompts are built and its hook vectors processed."""

    prepend_bos: bool | None
    """True: BOS first; False: no special token; None: the tokenizer's default special tokens."""
    bos_token_id: int | None = None
    """The token used as BOS when it is not the tokenizer's own (recorded by the trainer)."""
    eos_fallback: bool = False
    """Use the tokenizer's EOS when it has no BOS (the trainer's rule, for SAEs that did not record the id)."""
    source: str = "tokenizer default"
    """Where ``prepend_bos`` came from: a CLI flag, the SAE config, pseval training, the tokenizer."""
    processing: Any = None
    """The SAE's ``ActivationProcessing`` (None: raw activations)."""

    def processing_key(self) -> dict[str, Any]:
        """The processing as a JSON-able dict ({} for raw activations)."""
        if self.processing is None or self.processing.is_identity():
            return {}
        return dict(self.processing.key())

    def identity(self) -> dict[str, Any]:
        """What of the regime decides the numbers (part of a result's identity)."""
        return {
            "prepend_bos": self.prepend_bos,
            "bos_token_id": self.bos_token_id,
            "bos_eos_fallback": self.eos_fallback,
            "activation_processing": self.processing_key(),
        }

    def resolve_bos(self, tokenizer: Any) -> int | None:
        """The token id prepended (None when no BOS is prepended by pseval); ConfigError when there is none."""
        if not self.prepend_bos:
            return None
        if self.bos_token_id is not None:
            return int(self.bos_token_id)
        token_id = getattr(tokenizer, "bos_token_id", None)
        if token_id is None and self.eos_fallback:
            token_id = getattr(tokenizer, "eos_token_id", None)
        if token_id is None:
            raise ConfigError(
                f"BOS is to be prepended ({self.source}) but the tokenizer has no BOS token",
                "pass --no-prepend-bos",
            )
        return int(token_id)

    def record(self, tokenizer: Any) -> dict[str, Any]:
        """The regime as the result JSON records it."""
        bos_id = self.resolve_bos(tokenizer)
        return {
            "prepend_bos": self.prepend_bos,
            "prepend_bos_source": self.source,
            "bos_token_id": bos_id,
            "bos_token": None if bos_id is None else str(tokenizer.convert_ids_to_tokens(bos_id)),
            "activation_processing": self.processing_key(),
        }


def processing_of(metadata: dict[str, Any]) -> Any:
    """The SAE's ``ActivationProcessing`` from its metadata (None when it asks for raw activations)."""
    try:
        from pseval.models.processing import processing_from_sae_metadata
    except ImportError:  # pragma: no cover - an installation without activation processing
        kwargs = metadata.get("model_from_pretrained_kwargs") or {}
        if isinstance(kwargs, dict) and any(kwargs.values()):
            raise ConfigError(
                f"the SAE expects processed-model activations ({kwargs}), which this pseval cannot produce",
                "upgrade pseval",
            ) from None
        return None
    processing = processing_from_sae_metadata(metadata)
    return None if processing.is_identity() else processing


def input_regime(metadata: dict[str, Any], config: PSEvalConfig) -> InputRegime:
    """The regime an SAE is evaluated with: ``--prepend-bos`` if given, else what its config records."""
    recorded = metadata.get("prepend_bos")
    pseval_trained = metadata.get("trained_with") == PSEVAL_TRAINED
    raw_id = metadata.get("bos_token_id")
    bos_token_id = int(raw_id) if isinstance(raw_id, int) and not isinstance(raw_id, bool) else None
    if config.prepend_bos is not None:
        prepend: bool | None = config.prepend_bos
        source = "--prepend-bos" if prepend else "--no-prepend-bos"
    elif recorded is not None:
        prepend, source = bool(recorded), "SAE config"
    elif pseval_trained:
        # The trainer always started contexts with BOS (or EOS) before it recorded prepend_bos.
        prepend, source = True, "pseval training (BOS-prefixed contexts)"
    else:
        prepend, source = None, "tokenizer default"
    return InputRegime(
        prepend_bos=prepend,
        bos_token_id=bos_token_id if prepend else None,
        eos_fallback=bool(prepend) and pseval_trained and bos_token_id is None,
        source=source,
        processing=processing_of(metadata),
    )


def check_processing(loaded: Any, hook: str, width: int, regime: InputRegime) -> None:
    """Fail before any model pass when the SAE's processing cannot be applied at its hook."""
    if regime.processing is None:
        return
    from pseval.models.processing import apply_processing

    apply_processing(loaded.model, hook, torch.zeros(1, width), regime.processing)


def processed(loaded: Any, hook: str, acts_ND: torch.Tensor, regime: InputRegime) -> torch.Tensor:
    """The hook vectors the SAE expects (raw ones when it asks for no processing)."""
    if regime.processing is None:
        return acts_ND
    from pseval.models.processing import apply_processing

    return apply_processing(loaded.model, hook, acts_ND, regime.processing)
