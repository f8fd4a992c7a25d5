"""Result identity, input regimes, the cross-validated dense threshold and one-SAE-at-a-time scoring."""

from __future__ import annotations

import json
import struct
import weakref
from pathlib import Path
from typing import Any

import pytest

import pseval.activations.collect as collect_module
from pseval.data.datasets import dataset_sha256
from pseval.errors import ConfigError
from pseval.evals.config import PSEvalConfig
from pseval.evals.results_store import identity_difference, with_dataset_hash
from pseval.evals.runner import evaluate, result_path
from pseval.sae.config import config_from_dict
from pseval.sae.formats import save_sae
from pseval.sae.model import SAE

HOOK = "blocks.1.hook_resid_post"


def write_sae(
    folder: Path, seed: int = 0, hook: str = HOOK, model_name: str = "tiny-llama", **metadata: Any
) -> Path:
    """A random TopK SAE for the tiny model (``model_name``), with ``metadata`` in its config."""
    fields: dict[str, Any] = {
        "architecture": "topk",
        "d_in": 32,
        "d_sae": 64,
        "k": 4,
        "hook_name": hook,
        "model_name": model_name,
        "metadata": metadata,
    }
    save_sae(SAE.create_random(config_from_dict(fields), seed=seed), folder, overwrite=True)
    return folder


@pytest.fixture
def env(tmp_path: Path, tmp_cache: Path, tiny_model_dir: Path, tiny_dataset_file: Path) -> dict[str, Any]:
    return {"model": str(tiny_model_dir), "dataset": str(tiny_dataset_file), "out": tmp_path / "results"}


def _config(env: dict[str, Any], **kw: Any) -> PSEvalConfig:
    base = {
        "model_name": env["model"],
        "dataset": env["dataset"],
        "bootstrap_resamples": 0,
        "interpret_tokens": 0,
    }
    return PSEvalConfig(**(base | kw))


def _no_model(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("the model was loaded")

    monkeypatch.setattr("pseval.models.loading.load_model", refuse)


def _collections(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Records the first prompt's token ids of every activation collection."""
    calls: list[list[int]] = []
    original = collect_module.collect_activations

    def spy(loaded: Any, prompts: Any, *args: Any, **kwargs: Any) -> Any:
        calls.append(list(prompts[0].input_ids))
        return original(loaded, prompts, *args, **kwargs)

    monkeypatch.setattr(collect_module, "collect_activations", spy)
    return calls


def test_same_folder_name_in_two_runs_gets_two_result_files(tmp_path: Path, env: dict[str, Any]) -> None:
    a = write_sae(tmp_path / "runA" / "sae", seed=1)
    b = write_sae(tmp_path / "runB" / "sae", seed=2)
    config = _config(env, baselines=False)
    first = evaluate(env["model"], [a], config=config, output_folder=env["out"])
    second = evaluate(env["model"], [b], config=config, output_folder=env["out"])
    assert first[0].sae_name == "sae" and second[0].sae_name == "runB_sae"
    assert second[0].sae_content_hash != first[0].sae_content_hash
    stored_a = json.loads(result_path(env["out"], "sae").read_text())
    stored_b = json.loads(result_path(env["out"], "runB_sae").read_text())
    assert stored_a["sae_path"] == str(a.resolve()) and stored_b["sae_path"] == str(b.resolve())
    # Both in one run: distinct names too, and each rerun finds its own file.
    both = evaluate(env["model"], [a, b], config=config, output_folder=env["out"])
    assert [r.sae_name for r in both] == ["sae", "runB_sae"]
    assert [r.eval_id for r in both] == [first[0].eval_id, second[0].eval_id]


def test_a_different_result_is_never_replaced_silently(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sae = write_sae(tmp_path / "sae", seed=1)
    evaluate(env["model"], [sae], config=_config(env, baselines=False), output_folder=env["out"])
    path = result_path(env["out"], "sae")
    before = path.read_bytes()
    _no_model(monkeypatch)  # every refusal happens before the model loads
    with pytest.raises(ConfigError, match=r"template: .* there, .* now.*--force-rerun.*--output-folder"):
        evaluate(
            env["model"],
            [sae],
            config=_config(env, baselines=False, template="{context} so {word} is"),
            output_folder=env["out"],
        )
    with pytest.raises(ConfigError, match=r"hook_name: .*blocks.1.hook_resid_post.* there"):
        evaluate(
            env["model"],
            [sae],
            config=_config(env, baselines=False),
            output_folder=env["out"],
            hook_name="blocks.2.hook_resid_post",
        )
    # The same folder retrained (other weights): another SAE, refused as well.
    write_sae(tmp_path / "sae", seed=9)
    with pytest.raises(ConfigError, match=r"content hash"):
        evaluate(env["model"], [sae], config=_config(env, baselines=False), output_folder=env["out"])
    assert path.read_bytes() == before


def _overwrite_decoder_row(folder: Path, latent: int) -> None:
    """Add 1 to the first value of one decoder row in place (header, size and the rest unchanged)."""
    from pseval.sae.formats._common import safetensors_header

    path = folder / "sae_weights.safetensors"
    entries, data_start = safetensors_header(path)
    entry = entries["W_dec"]  # [d_sae, d_in] float32
    offset = data_start + entry.begin + latent * entry.shape[1] * 4  # type: ignore[attr-defined]
    with path.open("r+b") as fh:
        fh.seek(offset)
        value = struct.unpack("<f", fh.read(4))[0]
        fh.seek(offset)
        fh.write(struct.pack("<f", value + 1.0))


def test_a_changed_decoder_row_a_result_read_is_another_result(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder is read only for the chosen latents' rows (no metric reads it whole): the result records their
    hash, and a rerun compares it with the files' rows now, so an edit of those rows is never taken for the
    finished result, while an edit of a row no score read leaves the result finished."""
    sae = write_sae(tmp_path / "sae", seed=1)
    config = _config(env, baselines=False, site_check=False)
    first = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    identity = first.result_identity or {}
    assert identity["sae_decoder_hash"] is None and identity["sae_decoder_rows_hash"]
    chosen = {d.latent_1 for d in first.eval_result_details} | {d.latent_2 for d in first.eval_result_details}
    unchosen = min(set(range(64)) - chosen)
    path = result_path(env["out"], "sae")
    before = path.read_bytes()
    _no_model(monkeypatch)
    _overwrite_decoder_row(sae, unchosen)
    kept = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    assert kept.eval_id == first.eval_id and path.read_bytes() == before
    _overwrite_decoder_row(sae, max(chosen))
    with pytest.raises(ConfigError, match=r"sae_decoder_rows_hash: .* there, .* now"):
        evaluate(env["model"], [sae], config=config, output_folder=env["out"])
    assert path.read_bytes() == before


def test_a_result_of_a_wider_sae_is_refused_by_name_not_by_reading_its_rows(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The decoder rows a stored result read are compared only once the rest of its identity matches: a result
    of another SAE (here a wider one, whose chosen latents lie past this one's decoder) names what differs."""
    sae = write_sae(tmp_path / "sae", seed=1)
    config = _config(env, baselines=False, site_check=False)
    first = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    assert max(max(d.latent_1, d.latent_2) for d in first.eval_result_details) >= 8
    fields: dict[str, Any] = {"architecture": "topk", "d_in": 32, "d_sae": 8, "k": 4, "hook_name": HOOK,
                              "model_name": "tiny-llama"}  # fmt: skip
    save_sae(SAE.create_random(config_from_dict(fields), seed=3), tmp_path / "sae", overwrite=True)
    _no_model(monkeypatch)
    with pytest.raises(ConfigError, match=r"content hash .* there, .* now"):
        evaluate(env["model"], [sae], config=_config(env, baselines=False, site_check=False, topk_overlap_k=4),
                 output_folder=env["out"])  # fmt: skip


def test_a_metric_reading_the_whole_decoder_puts_its_hash_in_the_identity(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    sae = write_sae(tmp_path / "sae", seed=1)
    config = _config(env, baselines=False, site_check=False, standard_metrics_tokens=64)
    first = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    identity = first.result_identity or {}
    assert identity["sae_decoder_hash"] and "sae_decoder_rows_hash" not in identity
    _no_model(monkeypatch)
    _overwrite_decoder_row(sae, 0)  # any row: the whole decoder decides the numbers
    with pytest.raises(ConfigError, match=r"sae_decoder_hash: .* there, .* now"):
        evaluate(env["model"], [sae], config=config, output_folder=env["out"])


def test_bos_regime_per_sae_from_its_config(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    bos = write_sae(tmp_path / "bos", seed=1, prepend_bos=True)
    plain = write_sae(tmp_path / "plain", seed=2, prepend_bos=False)
    # A pseval-trained SAE from before prepend_bos was recorded: its contexts started with BOS.
    old = write_sae(tmp_path / "old", seed=3, prepend_bos=None, trained_with="pseval")
    calls = _collections(monkeypatch)
    results = evaluate(
        env["model"], [bos, plain, old], config=_config(env, baselines=False), output_folder=env["out"]
    )
    from pseval.models.loading import load_model

    tok = load_model(env["model"]).tokenizer
    assert len(calls) == 2  # two distinct prompt sets, one pass each
    assert sorted(ids[0] == tok.bos_token_id for ids in calls) == [False, True]
    regimes = {r.sae_name: r.input_regime for r in results}
    assert regimes["bos"]["prepend_bos"] is True and regimes["bos"]["bos_token"] == "[BOS]"
    assert regimes["bos"]["prepend_bos_source"] == "SAE config"
    assert regimes["plain"]["prepend_bos"] is False and regimes["plain"]["bos_token_id"] is None
    assert regimes["old"]["prepend_bos"] is True and "pseval training" in regimes["old"]["prepend_bos_source"]
    on_disk = json.loads(result_path(env["out"], "bos").read_text())
    assert on_disk["input_regime"]["prepend_bos"] is True

    # --no-prepend-bos overrides every SAE's record: one prompt set.
    calls.clear()
    forced = evaluate(
        env["model"],
        [bos, plain],
        config=_config(env, baselines=False, prepend_bos=False),
        output_folder=None,
    )
    assert len(calls) == 1 and calls[0][0] != tok.bos_token_id
    assert all(r.input_regime["prepend_bos_source"] == "--no-prepend-bos" for r in forced)


def test_dense_threshold_cross_validated_without_held_out_split(
    tmp_path: Path, env: dict[str, Any], tiny_dataset_file: Path
) -> None:
    only_test = tmp_path / "only_test.jsonl"
    rows = [json.loads(line) for line in tiny_dataset_file.read_text().splitlines() if line.strip()]
    only_test.write_text("\n".join(json.dumps(r) for r in rows if r["split"] == "test") + "\n")
    sae = write_sae(tmp_path / "sae", seed=1)
    result = evaluate(
        env["model"], [sae], config=_config(env, dataset=str(only_test), balance=False), output_folder=None
    )[0]
    dense = result.eval_result_metrics["baseline_dense"]
    assert dense["threshold_selection"] == "cv5"
    assert "no usable dev split" in dense["threshold_selection_reason"]
    assert len(dense["fold_thresholds"]) == 5
    assert "baseline_random_sae" in result.eval_result_metrics
    with_dev = evaluate(env["model"], [sae], config=_config(env), output_folder=None)[0]
    assert with_dev.eval_result_metrics["baseline_dense"]["threshold_selection"] == "dev split"
    everything = evaluate(
        env["model"], [sae], config=_config(env, split="all", balance=False), output_folder=None
    )
    assert everything[0].eval_result_metrics["baseline_dense"]["threshold_selection"].startswith("cv")


def test_saes_are_materialised_one_at_a_time(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from pseval.sae.source import SAESource

    saes = [write_sae(tmp_path / f"s{i}", seed=i, hook=f"blocks.{i % 3}.hook_resid_post") for i in range(4)]
    live: list[weakref.ref[SAE]] = []
    peak = [0]
    original = SAESource.load

    def tracking_load(self: SAESource, *args: Any, **kwargs: Any) -> SAE:
        import gc

        gc.collect()
        alive = sum(ref() is not None for ref in live)
        peak[0] = max(peak[0], alive + 1)
        sae = original(self, *args, **kwargs)
        live.append(weakref.ref(sae))
        return sae

    monkeypatch.setattr(SAESource, "load", tracking_load)
    results = evaluate(env["model"], saes, config=_config(env), output_folder=env["out"])
    # At most one SAE in memory at a time (a lazily readable one is not loaded whole at all).
    assert len(results) == 4 and peak[0] <= 1
    assert all(result_path(env["out"], f"s{i}").is_file() for i in range(4))


def test_bad_sae_fails_before_any_model_pass(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = write_sae(tmp_path / "good", seed=1)
    bad_hook = write_sae(tmp_path / "bad", seed=2, hook="blocks.1.hook_nonsense")
    calls = _collections(monkeypatch)
    with pytest.raises(Exception, match="hook_nonsense"):
        evaluate(env["model"], [good, bad_hook], config=_config(env), output_folder=env["out"])
    assert calls == [] and not result_path(env["out"], "good").exists()


def test_processed_model_activations_for_center_writing_weights(
    tmp_path: Path, tmp_cache: Path, tiny_dataset_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from pseval.activations.collect import collect_activations
    from pseval.data.datasets import load_dataset
    from pseval.data.prompts import build_prompts
    from pseval.sae.formats import load_sae
    from tests.helpers import tiny_loaded

    loaded = tiny_loaded("gpt2", n_layers=3, d_model=32)
    raw = write_sae(tmp_path / "raw", seed=5, model_name="tiny-gpt2")
    centred = write_sae(
        tmp_path / "centred",
        seed=5,
        model_name="tiny-gpt2",
        model_from_pretrained_kwargs={"center_writing_weights": True},
    )
    calls = _collections(monkeypatch)
    config = _config({"model": "tiny-gpt2", "dataset": str(tiny_dataset_file)}, baselines=False)
    results = evaluate(loaded, [raw, centred], config=config, output_folder=None)
    assert len(calls) == 1  # one pass: processing is applied to the collected raw activations
    assert results[0].input_regime["activation_processing"] == {}
    assert results[1].input_regime["activation_processing"] == {"center_writing_weights": True}
    assert results[0].result_identity != results[1].result_identity

    # By hand: raw hook vectors, centred over d_model, encoded, top latent per prompt.
    ds = load_dataset(loaded.tokenizer, name=str(tiny_dataset_file), split="test")
    ps = build_prompts(loaded.tokenizer, ds)
    acts = collect_activations(loaded, ps.prompts, [HOOK], cache=False).acts[HOOK]
    sae = load_sae(centred)
    for name, vectors, result in (
        ("raw", acts, results[0]),
        ("centred", acts - acts.mean(-1, keepdim=True), results[1]),
    ):
        feats = sae.encode(vectors)
        tops = torch.where(feats.max(-1).values > 0, feats.argmax(-1), torch.tensor(-1)).tolist()
        assert [d.latent_1 for d in result.eval_result_details] == [tops[a] for a, _ in ps.pair_index], name
    # The processing changed what the SAE saw.
    assert [d.activation_1 for d in results[0].eval_result_details] != [
        d.activation_1 for d in results[1].eval_result_details
    ]


def test_an_edited_dataset_is_not_taken_for_a_finished_result(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    dataset = tmp_path / "pairs.jsonl"
    dataset.write_bytes(Path(env["dataset"]).read_bytes())
    sae = write_sae(tmp_path / "sae", seed=1)
    config = _config(env, baselines=False, dataset=str(dataset))
    evaluate(env["model"], [sae], config=config, output_folder=env["out"])
    path = result_path(env["out"], "sae")
    stored = json.loads(path.read_text())
    assert stored["result_identity"]["dataset_sha256"] == dataset_sha256(str(dataset))
    before = path.read_bytes()
    # the same name, other content (one label flipped): another dataset, refused before the model loads
    rows = [json.loads(line) for line in dataset.read_text().splitlines()]
    rows[0]["label"] = 1 - rows[0]["label"]
    dataset.write_text("".join(json.dumps(row) + "\n" for row in rows))
    _no_model(monkeypatch)
    with pytest.raises(
        ConfigError, match=r"other dataset content \(sha256 \w+ there, \w+ now\).*--force-rerun"
    ):
        evaluate(env["model"], [sae], config=config, output_folder=env["out"])
    assert path.read_bytes() == before
    # a result stored before the hash was recorded: a .jsonl file's old content is unknown, so refused too
    del stored["result_identity"]["dataset_sha256"]
    del stored["result_checksum"]  # such files were written before result checksums too
    path.write_text(json.dumps(stored))
    with pytest.raises(ConfigError, match=r"other dataset content \(sha256 not recorded there"):
        evaluate(env["model"], [sae], config=config, output_folder=env["out"])


def test_results_stored_before_the_dataset_hash_are_of_the_files_shipped_then() -> None:
    for name in ("wic", "wordnet"):  # unchanged since: still the same dataset
        assert with_dataset_hash({"dataset": name})["dataset_sha256"] == dataset_sha256(name)
    # wordnet-2x2 was rebuilt (its cells repaired): a result of the old file is of another dataset
    legacy = with_dataset_hash({"dataset": "wordnet-2x2"})
    assert legacy["dataset_sha256"] != dataset_sha256("wordnet-2x2")
    current = {"dataset": "wordnet-2x2", "dataset_sha256": dataset_sha256("wordnet-2x2")}
    assert "other dataset content" in (identity_difference({"dataset": "wordnet-2x2"}, current) or "")
    assert identity_difference(current, current) is None


def test_a_result_stored_with_sha256_hashes_is_kept_with_its_decoder_rows_compared(
    tmp_path: Path, env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Identity version 2 hashed the same bytes with sha256: a result stored so is kept (its SAE hashed the old
    way once), its decoder rows still compared, so an edit of a row it read is still another result."""
    from pseval.evals.schema import result_checksum
    from pseval.sae.formats.loader import open_sae
    from pseval.sae.weights_check import hash_and_check

    sae = write_sae(tmp_path / "sae", seed=1)
    config = _config(env, baselines=False, site_check=False)
    first = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    path = result_path(env["out"], "sae")
    stored = json.loads(path.read_text(encoding="utf-8"))
    identity = stored["result_identity"]
    assert identity["identity_version"] == 3 and identity["sae_decoder_rows_hash"]
    sha256_hash = hash_and_check(open_sae(str(sae)), False, algorithm="sha256").content_hash
    assert sha256_hash != identity["sae_content_hash"]
    identity.update(identity_version=2, sae_content_hash=sha256_hash)  # as version 2 wrote it
    stored["sae_content_hash"] = sha256_hash
    stored["result_checksum"] = result_checksum(stored)
    path.write_text(json.dumps(stored, indent=2), encoding="utf-8")
    before = path.read_bytes()

    _no_model(monkeypatch)
    kept = evaluate(env["model"], [sae], config=config, output_folder=env["out"])[0]
    assert kept.eval_id == first.eval_id and kept.sae_content_hash == sha256_hash
    assert path.read_bytes() == before
    chosen = {d.latent_1 for d in first.eval_result_details} | {d.latent_2 for d in first.eval_result_details}
    _overwrite_decoder_row(sae, max(chosen))
    with pytest.raises(ConfigError, match="--force-rerun"):
        evaluate(env["model"], [sae], config=config, output_folder=env["out"])
    assert path.read_bytes() == before
