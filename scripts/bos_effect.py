"""How much BOS changes PS-Eval: the share of pair predictions that differ with and without a BOS token.

Evaluates the demo SAEs (``pseval demo`` trains and caches them) on the WiC test split twice, once with
``--prepend-bos`` and once with ``--no-prepend-bos``, and prints JSON: per SAE, the pairs, the share of
pairs whose prediction (same top latent or not) changes, and the accuracy and specificity under each.

    python scripts/bos_effect.py
"""

from __future__ import annotations

import json
import sys

from pseval.demo import DemoConfig, demo_sae_dir
from pseval.evals.config import PSEvalConfig
from pseval.evals.runner import evaluate
from pseval.models.loading import load_model


def main() -> None:
    demo = DemoConfig()
    folders = sorted(str(p) for p in demo_sae_dir().iterdir() if (p / "cfg.json").is_file())
    if not folders:
        sys.exit("no demo SAEs cached: run `pseval demo` first")
    loaded = load_model(demo.model)
    runs = {}
    for bos in (True, False):
        # The demo SAEs record prepend_bos=True: read without BOS, the site check would stop the run on
        # purpose. Measuring what that wrong policy does to the scores is this script's point.
        config = PSEvalConfig(
            model_name=demo.model,
            prepend_bos=bos,
            baselines=False,
            bootstrap_resamples=0,
            interpret_tokens=0,
            site_check=False,
        )
        runs[bos] = evaluate(loaded, folders, config=config, output_folder=None)
    report = []
    for with_bos, without in zip(runs[True], runs[False], strict=True):
        a = [d.predicted_same for d in with_bos.eval_result_details]
        b = [d.predicted_same for d in without.eval_result_details]
        report.append(
            {
                "sae": with_bos.sae_name,
                "n_pairs": len(a),
                "share_predictions_changed": round(
                    sum(x != y for x, y in zip(a, b, strict=True)) / len(a), 4
                ),
                "accuracy_bos": with_bos.metric("ps_eval", "accuracy"),
                "accuracy_no_bos": without.metric("ps_eval", "accuracy"),
                "specificity_bos": with_bos.metric("ps_eval", "specificity"),
                "specificity_no_bos": without.metric("ps_eval", "specificity"),
            }
        )
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
