"""The SAE module: one ``torch.nn.Module`` for every supported architecture.

Every architecture's encode/decode reproduces SAELens 6.x inference exactly (same parameter names, same
order of operations, same dtype handling), so latents computed here equal those of
``sae_lens.SAE.load_from_disk`` on the same folder:

* input: ``x`` cast to the parameter dtype, normalised (``normalize_activations``), then ``b_dec``
  subtracted when ``apply_b_dec_to_input``;
* ``standard``: ``relu(sae_in @ W_enc + b_enc)``;
* ``topk``: ``pre = sae_in @ W_enc + b_enc`` (times the decoder row norms when
  ``rescale_acts_by_decoder_norm``), keep the k largest entries of ``pre`` per input, ReLU them, zeros
  elsewhere;
* ``jumprelu`` and ``batchtopk`` (the latter as saved for inference): ``relu(pre) * (pre > threshold)``;
* ``gated``: ``(sae_in @ W_enc + b_gate > 0) * relu(sae_in @ (W_enc * exp(r_mag)) + b_mag)``;
* decode: ``feats @ W_dec + b_dec`` (topk with rescaling first divides feats by the decoder norms), then
  the input normalisation is undone.

Each architecture's encode is its registered kernel (:mod:`pseval.sae.architectures`) applied to one block
as wide as the SAE, the same kernel the block-wise scoring path and training run.

Parameters stay ``nn.Parameter`` and encode/decode are differentiable (apart from the top-k selection
and the threshold/gate comparisons), so the trainer can subclass or wrap this class.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from typing import Any

import torch
from torch import nn

from pseval.errors import SAEError
from pseval.sae.architectures import (
    NormState,
    architecture_of,
    batch_topk_activation,
    check_width,
    jumprelu_activation,
    normalize_input,
    sae_input,
    topk_activation,
)
from pseval.sae.config import SAEConfig, TopKSAEConfig

_DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.float64: "float64",
}


RANDOM_SEED_BLOCK = 4096
"""Latents of :meth:`SAE.create_random` drawn from one seed (the unit of block-wise generation)."""


def _block_seed(seed: int, block: int) -> int:
    digest = hashlib.sha256(f"pseval-random-sae:{seed}:{block}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def random_encoder_block(cfg: SAEConfig, seed: int, block: int) -> torch.Tensor:
    """Columns ``[block * RANDOM_SEED_BLOCK, ...)`` of a random SAE's ``W_enc`` (float32, Kaiming-uniform)."""
    start = block * RANDOM_SEED_BLOCK
    width = min(RANDOM_SEED_BLOCK, cfg.d_sae - start)
    gen = torch.Generator().manual_seed(_block_seed(seed, block))
    bound = math.sqrt(6.0 / cfg.d_in)
    # In place: the same (u * 2 - 1) * bound, without three temporaries of the block's size.
    return torch.rand(cfg.d_in, width, generator=gen).mul_(2).sub_(1).mul_(bound)


def unit_rows(W_FD: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit norm (zero rows stay zero)."""
    return W_FD / W_FD.norm(dim=-1, keepdim=True).clamp(min=1e-12)


def random_extras(cfg: SAEConfig, seed: int) -> dict[str, torch.Tensor]:
    """The random ``b_dec`` and per-latent parameters of ``SAE.create_random(..., random_biases=True)``."""
    gen = torch.Generator().manual_seed(_block_seed(seed, -1))
    params = {"b_dec": torch.randn(cfg.d_in, generator=gen, dtype=torch.float64) * 0.1}
    for name in cfg.extra_parameters:
        if name == "threshold" and cfg.architecture == "batchtopk":
            # BatchTopK learns one global threshold, saved per latent
            value = torch.full((cfg.d_sae,), 0.1 + 0.4 * torch.rand(1, generator=gen).item())
        elif name == "threshold":
            value = torch.rand(cfg.d_sae, generator=gen, dtype=torch.float64) * 0.5
        else:
            value = torch.randn(cfg.d_sae, generator=gen, dtype=torch.float64) * 0.1
        params[name] = value
    return params


class SAE(nn.Module):
    """A sparse autoencoder of any supported architecture (``cfg.architecture``).

    Shapes: ``W_enc [d_in, d_sae]``, ``W_dec [d_sae, d_in]``, ``b_dec [d_in]``, and per architecture
    ``b_enc [d_sae]`` (all but gated), ``threshold [d_sae]`` (jumprelu, batchtopk),
    ``b_gate``, ``b_mag``, ``r_mag [d_sae]`` (gated).
    """

    W_enc: nn.Parameter
    W_dec: nn.Parameter
    b_dec: nn.Parameter
    b_enc: nn.Parameter
    threshold: nn.Parameter
    b_gate: nn.Parameter
    b_mag: nn.Parameter
    r_mag: nn.Parameter

    def __init__(self, cfg: SAEConfig, device: str | torch.device | None = None) -> None:
        super().__init__()
        self.cfg = cfg
        kw: dict[str, Any] = {"dtype": cfg.torch_dtype(), "device": device}
        self.W_enc = nn.Parameter(torch.zeros(cfg.d_in, cfg.d_sae, **kw))
        self.W_dec = nn.Parameter(torch.zeros(cfg.d_sae, cfg.d_in, **kw))
        self.b_dec = nn.Parameter(torch.zeros(cfg.d_in, **kw))
        for name in cfg.extra_parameters:
            setattr(self, name, nn.Parameter(torch.zeros(cfg.d_sae, **kw)))
        self._last_norm_state: NormState | None = None

    # ---------------------------------------------------------------- construction

    @classmethod
    def create_random(
        cls,
        cfg: SAEConfig,
        seed: int = 0,
        device: str | torch.device | None = None,
        random_biases: bool = False,
    ) -> SAE:
        """A randomly initialised SAE (the random-SAE control, and test fixtures).

        ``W_enc`` is Kaiming-uniform (fan-in ``d_in``), drawn in blocks of :data:`RANDOM_SEED_BLOCK` latents,
        each from its own seed (:func:`random_encoder_block`), so that any block can be drawn alone;
        ``W_dec = W_enc.T`` with unit-norm rows. Biases are
        zero unless ``random_biases``, which also draws small positive thresholds (one shared value for
        batchtopk, as its training learns) and small ``r_mag`` so that every code path is exercised.
        """
        sae = cls(cfg, device=device)
        params: dict[str, torch.Tensor] = random_extras(cfg, seed) if random_biases else {}
        with torch.no_grad():
            # One seed per block of RANDOM_SEED_BLOCK latents, so the control can be drawn block by block.
            for j in range(math.ceil(cfg.d_sae / RANDOM_SEED_BLOCK)):
                W_enc_DB = random_encoder_block(cfg, seed, j)
                start = j * RANDOM_SEED_BLOCK
                sae.W_enc[:, start : start + W_enc_DB.shape[1]].copy_(W_enc_DB)
                sae.W_dec[start : start + W_enc_DB.shape[1]].copy_(unit_rows(W_enc_DB.T))
        with torch.no_grad():
            for name, value in params.items():
                getattr(sae, name).copy_(value)
        return sae

    @classmethod
    def from_state_dict(
        cls,
        cfg: SAEConfig,
        state_dict: dict[str, torch.Tensor],
        device: str | torch.device | None = None,
        assign: bool = False,
    ) -> SAE:
        """Build an SAE from tensors named as SAELens names them, checking names and shapes.

        Tensors are cast to ``cfg.dtype``. Missing, unexpected or mis-shaped tensors raise :class:`SAEError`.
        With ``assign`` the parameters take the given tensors themselves where no cast or copy is needed (a
        memory-mapped file stays mapped, nothing is allocated twice); otherwise they are copied.
        """
        sae = cls(cfg, device="meta" if assign else device)
        expected = {name: tuple(p.shape) for name, p in sae.named_parameters()}
        missing = sorted(set(expected) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(expected))
        if missing or unexpected:
            parts = []
            if missing:
                parts.append(f"missing {', '.join(missing)}")
            if unexpected:
                parts.append(f"unexpected {', '.join(unexpected)}")
            raise SAEError(
                f"{cfg.architecture} SAE weights do not match the architecture ({'; '.join(parts)})",
                "check that the config's architecture matches the weights file",
            )
        for name, shape in expected.items():
            got = tuple(state_dict[name].shape)
            if got != shape:
                raise SAEError(
                    f"SAE tensor {name} has shape {list(got)}, expected {list(shape)} "
                    f"for d_in={cfg.d_in}, d_sae={cfg.d_sae}",
                    "check d_in/d_sae in the config against the weights",
                )
        if assign:
            target = torch.device(device) if device is not None else None
            for name, value in state_dict.items():
                tensor = value.detach().to(device=target, dtype=cfg.torch_dtype()).contiguous()
                setattr(sae, name, nn.Parameter(tensor))
            return sae
        with torch.no_grad():
            for name, value in state_dict.items():
                getattr(sae, name).copy_(value.detach().to(dtype=sae.W_enc.dtype))
        return sae

    def clone(self) -> SAE:
        """A deep copy (config included) that shares nothing with this SAE."""
        new = copy.deepcopy(self)
        new._last_norm_state = None
        return new

    # ---------------------------------------------------------------- properties

    @property
    def architecture(self) -> str:
        """The architecture tag (``cfg.architecture``)."""
        return self.cfg.architecture

    @property
    def d_in(self) -> int:
        """Input width."""
        return self.cfg.d_in

    @property
    def d_sae(self) -> int:
        """Number of latents."""
        return self.cfg.d_sae

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the parameters (and of the computation)."""
        return self.W_enc.dtype

    @property
    def device(self) -> torch.device:
        """Device of the parameters."""
        return self.W_enc.device

    def _apply(self, fn: Any, recurse: bool = True) -> SAE:
        """Keep ``cfg.dtype`` in step with the parameters after ``.to()``, ``.half()``, ..."""
        result = super()._apply(fn, recurse)
        name = _DTYPE_NAMES.get(self.W_enc.dtype)
        if name is not None and name != self.cfg.dtype:
            self.cfg.dtype = name  # type: ignore[assignment]
        return result  # type: ignore[return-value]

    # ---------------------------------------------------------------- encode / decode

    def _check_width(self, x: torch.Tensor) -> None:
        check_width(self.cfg, x)

    def _normalize_out(self, out_ND: torch.Tensor, state: NormState | None) -> torch.Tensor:
        mode = self.cfg.normalize_activations
        if mode not in ("constant_norm_rescale", "layer_norm"):
            return out_ND
        if state is None:
            raise SAEError(
                f"decode of an SAE with normalize_activations={mode!r} needs the input's statistics",
                "pass the input activations as decode(feats, x_ND) or call encode on them first",
            )
        if mode == "constant_norm_rescale":
            assert state.coeff is not None
            return out_ND / state.coeff
        assert state.std is not None and state.mu is not None
        return out_ND * state.std + state.mu

    def _sae_in(self, x_ND: torch.Tensor) -> tuple[torch.Tensor, NormState | None]:
        return sae_input(self.cfg, self.b_dec, x_ND)

    def _full_block(self) -> dict[str, torch.Tensor]:
        """Every latent as one block: the kernel's tensors, as parameters (encode stays differentiable)."""
        return {name: getattr(self, name) for name in architecture_of(self.cfg).block_tensors(self.cfg)}

    def _encode(self, x_ND: torch.Tensor) -> tuple[torch.Tensor, NormState | None]:
        sae_in_ND, state = self._sae_in(x_ND)
        arch = architecture_of(self.cfg)
        codes_NF = arch.encode_block(self.cfg, sae_in_ND, self._full_block())
        return arch.select_rows(self.cfg, codes_NF), state

    def encode_pre_act(self, x_ND: torch.Tensor) -> torch.Tensor:
        """The values the activation function is applied to.

        ``sae_in @ W_enc + b_enc`` (topk: times the decoder norms when ``rescale_acts_by_decoder_norm``);
        for gated SAEs the magnitude path ``sae_in @ (W_enc * exp(r_mag)) + b_mag`` (SAELens'
        ``hook_sae_acts_pre``).
        """
        sae_in_ND, _ = self._sae_in(x_ND)
        return architecture_of(self.cfg).pre_activations(self.cfg, sae_in_ND, self._full_block())

    def encode(self, x_ND: torch.Tensor) -> torch.Tensor:
        """Latent activations ``feats [..., d_sae]`` of activations ``x [..., d_in]``.

        For the normalisation modes that need the input's statistics to undo them, the statistics of the
        last call are kept so that a following ``decode(feats)`` works as in SAELens.
        """
        feats_NF, state = self._encode(x_ND)
        self._last_norm_state = (
            NormState(
                state.shape,
                *(t.detach() if t is not None else None for t in (state.coeff, state.mu, state.std)),
            )
            if state is not None
            else None
        )
        return feats_NF

    def encode_batchtopk(self, x_ND: torch.Tensor) -> torch.Tensor:
        """BatchTopK training activation: ReLU, then the ``int(k * N)`` largest entries of the whole batch."""
        k = getattr(self.cfg, "k", None)
        if k is None:
            raise SAEError(f"encode_batchtopk needs an SAE with k, not a {self.cfg.architecture} SAE")
        sae_in_ND, _ = self._sae_in(x_ND)
        pre_NF = architecture_of(self.cfg).pre_activations(self.cfg, sae_in_ND, self._full_block())
        return batch_topk_activation(pre_NF, float(k))

    def decode(self, feats_NF: torch.Tensor, x_ND: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction ``[..., d_in]`` of latents ``feats [..., d_sae]``.

        ``x_ND`` (the encoded input) is only needed for ``constant_norm_rescale`` and ``layer_norm``; without
        it, the statistics of the last ``encode`` call of the same batch shape are used.
        """
        state: NormState | None = None
        if self.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
            if x_ND is not None:
                self._check_width(x_ND)
                _, state = normalize_input(self.cfg, x_ND.to(self.W_enc.dtype))
            elif self._last_norm_state is not None and self._last_norm_state.shape == tuple(
                feats_NF.shape[:-1]
            ):
                state = self._last_norm_state
        return self._decode(feats_NF, state)

    def _decode(self, feats_NF: torch.Tensor, state: NormState | None) -> torch.Tensor:
        if isinstance(self.cfg, TopKSAEConfig) and self.cfg.rescale_acts_by_decoder_norm:
            feats_NF = feats_NF * (1 / self.W_dec.norm(dim=-1))
        out_ND = feats_NF.to(self.W_dec.dtype) @ self.W_dec + self.b_dec
        return self._normalize_out(out_ND, state)

    def decode_sparse(self, codes_NF: torch.Tensor) -> torch.Tensor:
        """:meth:`decode` of sparse CSR codes (``Tensor.to_sparse_csr``): a sparse matmul that reads the active
        latents' decoder rows only, so its cost follows L0, not the width.

        Its sums run in another order than the dense matmul's: equal to float rounding. An SAE whose output is
        de-normalised with its input's statistics (``constant_norm_rescale``, ``layer_norm``) needs
        :meth:`decode`.
        """
        if self.cfg.normalize_activations in ("constant_norm_rescale", "layer_norm"):
            raise SAEError(
                f"decode_sparse of an SAE with normalize_activations={self.cfg.normalize_activations!r}",
                "decode it densely with decode(feats, x_ND)",
            )
        values = codes_NF.values().to(self.W_dec.dtype)
        if isinstance(self.cfg, TopKSAEConfig) and self.cfg.rescale_acts_by_decoder_norm:  # as _decode
            values = values * (1 / self.W_dec.norm(dim=-1))[codes_NF.col_indices()]
        scaled_NF = torch.sparse_csr_tensor(
            codes_NF.crow_indices(),
            codes_NF.col_indices(),
            values,
            codes_NF.shape,
            dtype=self.W_dec.dtype,
            check_invariants=False,  # a valid CSR tensor's own indices
        )
        return torch.sparse.mm(scaled_NF, self.W_dec) + self.b_dec

    def forward(self, x_ND: torch.Tensor) -> torch.Tensor:
        """Reconstruction of ``x`` (``decode(encode(x))``)."""
        feats_NF, state = self._encode(x_ND)
        return self._decode(feats_NF, state)

    # ---------------------------------------------------------------- transformations

    def decoder_norms(self) -> torch.Tensor:
        """L2 norm of each decoder row, ``[d_sae]`` (detached)."""
        return self.W_dec.detach().norm(dim=-1)

    def fold_decoder_norms(self, strict: bool = True) -> SAE:
        """A copy with unit-norm decoder rows and each latent's activation scaled by its old row norm.

        ``W_enc`` columns, ``b_enc``, ``threshold`` and the gated biases are multiplied by the norms and
        ``W_dec`` rows divided by them, so reconstructions are unchanged. For a TopK SAE without
        ``rescale_acts_by_decoder_norm`` this changes which latents are selected; ``strict`` refuses that
        case (``strict=False`` folds anyway and the result is a different TopK SAE).
        """
        cfg = self.cfg
        if isinstance(cfg, TopKSAEConfig) and not cfg.rescale_acts_by_decoder_norm and strict:
            raise SAEError(
                "folding decoder norms into a TopK SAE changes which latents it selects",
                "pass strict=False to fold anyway",
            )
        new = self.clone()
        norms_F = new.W_dec.detach().norm(dim=-1).clamp(min=1e-8)
        with torch.no_grad():
            new.W_dec.div_(norms_F[:, None])
            new.W_enc.mul_(norms_F[None, :])
            for name in architecture_of(cfg).scaled_with_activations(cfg):
                getattr(new, name).mul_(norms_F)
        if isinstance(new.cfg, TopKSAEConfig):
            new.cfg.rescale_acts_by_decoder_norm = False
        new.cfg.metadata = {**new.cfg.metadata, "decoder_norms_folded": True}
        return new

    def with_apply_b_dec_to_input(self, apply: bool) -> SAE:
        """An equivalent SAE with ``apply_b_dec_to_input`` set to ``apply`` (the shift moves into the biases).

        ``(x - b_dec) @ W_enc + b_enc == x @ W_enc + (b_enc - b_dec @ W_enc)``; the gated magnitude bias
        moves by the same shift times ``exp(r_mag)``. Used to write formats that fix this choice.
        """
        new = self.clone()
        if apply == self.cfg.apply_b_dec_to_input:
            return new
        sign = -1.0 if self.cfg.apply_b_dec_to_input else 1.0
        with torch.no_grad():
            shift_F = self.b_dec.double() @ self.W_enc.double()
            if self.cfg.architecture == "gated":
                new.b_gate.copy_(self.b_gate.double() + sign * shift_F)
                new.b_mag.copy_(self.b_mag.double() + sign * shift_F * self.r_mag.double().exp())
            else:
                new.b_enc.copy_(self.b_enc.double() + sign * shift_F)
        new.cfg.apply_b_dec_to_input = apply
        return new

    def fold_activation_norm_scaling_factor(self, scaling_factor: float) -> SAE:
        """A copy that reads raw activations, for an SAE trained on activations multiplied by ``scaling_factor``.

        As SAELens does: ``W_enc *= s``, ``W_dec /= s``, ``b_dec /= s`` and ``normalize_activations`` becomes
        ``"none"``.
        """
        new = self.clone()
        with torch.no_grad():
            new.W_enc.mul_(scaling_factor)
            new.W_dec.div_(scaling_factor)
            new.b_dec.div_(scaling_factor)
        new.cfg.normalize_activations = "none"
        return new

    # ---------------------------------------------------------------- identity

    def fingerprint(self) -> str:
        """A short hash of what the SAE computes: its architecture fields and every tensor's bytes."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.cfg.arch_fields(), sort_keys=True).encode())
        for name, tensor in sorted(self.state_dict().items()):
            t = tensor.detach().to("cpu").contiguous()
            digest.update(f"{name}:{t.dtype}:{list(t.shape)}".encode())
            digest.update(t.flatten().view(torch.uint8).numpy().tobytes())
        return digest.hexdigest()[:16]

    def extra_repr(self) -> str:
        hook = f", hook_name={self.cfg.hook_name!r}" if self.cfg.hook_name else ""
        return f"architecture={self.cfg.architecture!r}, d_in={self.cfg.d_in}, d_sae={self.cfg.d_sae}{hook}"


__all__ = [
    "RANDOM_SEED_BLOCK",
    "SAE",
    "NormState",
    "batch_topk_activation",
    "jumprelu_activation",
    "random_encoder_block",
    "random_extras",
    "topk_activation",
    "unit_rows",
]
