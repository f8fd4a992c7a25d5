"""pseval's standard metrics against SAELens' own evaluation functions, on one SAE and the same tokens.

The model is a tiny random Llama; SAELens runs it as a TransformerLens ``HookedTransformer`` converted
from the same weights without processing (pseval's hooks match it to ~2e-5, see
tests/models/test_transformer_lens.py), pseval runs the Hugging Face model itself. The SAE is written
by pseval and loaded by ``sae_lens.SAE.load_from_disk``.

Definitions, and where they differ:

* MSE: SAELens' ``mse`` is the squared error summed over ``d_in``, averaged over tokens; pseval's ``mse``
  is averaged over elements, so ``saelens_mse == pseval_mse * d_in``.
* Explained variance: both are ``1 - Σ‖x - x̂‖² / Σ‖x - mean(x)‖²`` with the mean taken over the whole
  sample (SAELens' ``explained_variance``; its ``explained_variance_legacy`` instead averages a per-token
  ratio against the batch variance, and is not compared).
* L0, cosine, ‖x̂‖/‖x‖, relative reconstruction bias: same definitions (one batch here, where SAELens'
  per-batch ratio of means is pseval's ratio of sums).
* CE loss recovered (SAELens ``ce_loss_score``) and KL score: same formula, ``(zero - sae) / (zero -
  clean)``. They differ at special tokens: SAELens zero-ablates the hook at every position (BOS and
  separators included) while it splices the SAE only at non-special ones, and it drops a prediction only
  when its *input* token is special; pseval zeroes and splices at the same (text) positions and drops a
  prediction when its input or its target is special. The tokens here contain no special token, where
  the two coincide.
* KL: SAELens averages ``KL(clean ‖ spliced)`` over every position, the last one of each context
  included; pseval only over positions that predict a token of the context (as for the CE). The test
  compares pseval's KL with SAELens' per-position KL (``get_recons_loss``) averaged over those positions.

Tolerance: relative 1e-4 (absolute 1e-5) on every metric, the float32 difference between the two models'
forward passes; the number of active latents must agree exactly.
"""

from __future__ import annotations

import tempfile
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

from pseval.data.corpus import ContextBatch
from pseval.metrics.standard import downstream_metrics, reconstruction_metrics
from pseval.models.hooks import run_with_cache
from pseval.models.loading import wrap_model
from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae
from pseval.sae.model import SAE
from tests.helpers import random_batch, tiny_model, tiny_tokenizer

pytest.importorskip("sae_lens")
pytest.importorskip("transformer_lens")

HOOK = "blocks.1.hook_resid_post"
D_MODEL = 32
RTOL, ATOL = 1e-4, 1e-5


def _hooked(model: torch.nn.Module) -> Any:
    from transformer_lens import HookedTransformer
    from transformer_lens import loading_from_pretrained as loading

    with tempfile.TemporaryDirectory(prefix="tl-model-") as tmp:
        model.save_pretrained(tmp)
        cfg = loading.get_pretrained_model_config(tmp, hf_model=model, fold_ln=False)
        cfg.tokenizer_name = None
        state_dict = loading.get_pretrained_state_dict(tmp, cfg, hf_model=model)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            hooked = HookedTransformer(cfg, tokenizer=None, move_to_device=False)
        hooked.load_and_process_state_dict(
            state_dict,
            fold_ln=False,
            center_writing_weights=False,
            center_unembed=False,
            fold_value_biases=False,
        )
    return hooked.eval()


class _Tokens:
    """The part of SAELens' ActivationsStore its evaluation functions use: the same tokens every time."""

    def __init__(self, ids_BT: torch.Tensor) -> None:
        self.ids_BT = ids_BT
        self.context_size = ids_BT.shape[1]
        self.store_batch_size_prompts = ids_BT.shape[0]

    def get_batch_tokens(self, n: int) -> torch.Tensor:
        assert n == self.ids_BT.shape[0]
        return self.ids_BT

    def reset_input_dataset(self) -> None:
        pass


def _close(ours: float, theirs: float, what: str) -> None:
    assert ours == pytest.approx(theirs, rel=RTOL, abs=ATOL), f"{what}: pseval {ours} vs SAELens {theirs}"


@pytest.mark.parametrize("architecture", ["jumprelu", "topk", "batchtopk"])
def test_standard_metrics_agree_with_saelens_evals(architecture: str, tmp_path: Path) -> None:
    from sae_lens import SAE as SAELensSAE
    from sae_lens.evals import (
        get_downstream_reconstruction_metrics,
        get_recons_loss,
        get_sparsity_and_variance_metrics,
    )
    from sae_lens.training.activation_scaler import ActivationScaler

    model = tiny_model("llama", n_layers=2, d_model=D_MODEL)
    hooked = _hooked(model)
    ids_BT, mask_BT = random_batch(n=4, t=24, seed=3)  # no special tokens

    fields: dict[str, Any] = {"architecture": architecture, "d_in": D_MODEL, "d_sae": 96, "hook_name": HOOK}
    if architecture in ("topk", "batchtopk"):
        fields["k"] = 8
    sae = SAE.create_random(config_from_dict(fields), seed=1, random_biases=True)
    with torch.no_grad():  # decoder rows at varied norms, b_dec near the data: a non-trivial reconstruction
        sae.W_dec.mul_(torch.rand(96, 1, generator=torch.Generator().manual_seed(2)) * 2)
    save_sae(sae, tmp_path / "sae")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs_sae = SAELensSAE.load_from_disk(str(tmp_path / "sae"))

    store = _Tokens(ids_BT)
    scaler = ActivationScaler()
    with torch.no_grad():
        theirs, _ = get_sparsity_and_variance_metrics(
            theirs_sae,
            hooked,
            store,  # type: ignore[arg-type]
            scaler,
            n_batches=1,
            compute_l2_norms=True,
            compute_sparsity_metrics=True,
            compute_variance_metrics=True,
            compute_featurewise_density_statistics=False,
            eval_batch_size_prompts=4,
            model_kwargs={},
        )
        theirs_ce = get_downstream_reconstruction_metrics(
            theirs_sae,
            hooked,
            store,  # type: ignore[arg-type]
            scaler,
            compute_kl=True,
            compute_ce_loss=True,
            n_batches=1,
            eval_batch_size_prompts=4,
        )
        per_position = get_recons_loss(
            theirs_sae, hooked, scaler, ids_BT, compute_kl=True, compute_ce_loss=False
        )
    kl_sae = float(per_position["kl_div_with_sae"][:, :-1].mean())
    kl_zero = float(per_position["kl_div_with_ablation"][:, :-1].mean())

    acts_ND = run_with_cache(model, ids_BT, mask_BT, [HOOK])[HOOK].reshape(-1, D_MODEL)
    ours = reconstruction_metrics(sae, acts_ND)
    loaded = wrap_model(model, tiny_tokenizer(), name="tiny-llama", device="cpu")
    batch = ContextBatch(ids_BT, mask_BT, torch.zeros_like(ids_BT, dtype=torch.bool))
    ours_ce = downstream_metrics(loaded, sae, HOOK, batch)

    assert ours["n_tokens"] == ids_BT.numel()
    # The same active latents: the counts agree exactly (SAELens averages them in float32).
    assert round(float(ours["l0"]) * ids_BT.numel()) == round(theirs["l0"] * ids_BT.numel()), "L0"
    assert 0 < float(ours["l0"]) < 96  # guard: a sparse code, neither empty nor dense
    _close(float(ours["mse"]) * D_MODEL, theirs["mse"], "MSE (SAELens sums over d_in)")
    _close(float(ours["explained_variance"]), theirs["explained_variance"], "explained variance")
    _close(float(ours["cosine"]), theirs["cossim"], "cosine")
    _close(float(ours["l2_ratio"]), theirs["l2_ratio"], "l2 ratio")
    _close(
        float(ours["relative_reconstruction_bias"]),
        theirs["relative_reconstruction_bias"],
        "relative reconstruction bias",
    )
    _close(float(ours_ce["ce_loss_clean"]), theirs_ce["ce_loss_without_sae"], "clean CE")
    _close(float(ours_ce["ce_loss_with_sae"]), theirs_ce["ce_loss_with_sae"], "CE with SAE")
    _close(float(ours_ce["ce_loss_zero_ablation"]), theirs_ce["ce_loss_with_ablation"], "zero-ablation CE")
    _close(float(ours_ce["ce_loss_recovered"]), theirs_ce["ce_loss_score"], "CE loss recovered")
    _close(float(ours_ce["kl_div_with_sae"]), kl_sae, "KL with SAE")
    _close(float(ours_ce["kl_div_zero_ablation"]), kl_zero, "KL with zero ablation")
    _close(float(ours_ce["kl_div_score"]), 1 - kl_sae / kl_zero, "KL score")
    # SAELens' own averages include the last positions: close, not equal.
    assert float(ours_ce["kl_div_with_sae"]) == pytest.approx(theirs_ce["kl_div_with_sae"], rel=0.1)
    # Guard: the cross-check is about a non-trivial SAE (it neither reconstructs perfectly nor nothing).
    assert abs(float(ours_ce["ce_loss_with_sae"]) - float(ours_ce["ce_loss_clean"])) > 0.01
