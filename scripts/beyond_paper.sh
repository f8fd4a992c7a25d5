#!/usr/bin/env bash
# The exact commands behind the "Beyond the paper" sections of docs/results.md:
#   bash scripts/beyond_paper.sh
# Every step is resumable: finished SAEs, controls (cached under $PSEVAL_CACHE/controls) and result files
# are reused, so a second run only redraws the figures and reprints the tables.
#
#   1. configs/beyond-paper-smollm2.yaml: TopK, BatchTopK and Matryoshka BatchTopK at SmolLM2 layer 12
#      resid_post (4,608 latents, k 32, 131,072 tokens, seed 42), PS-Eval on WiC test and the standard
#      metrics;
#   2. each SAE again on WiC test with its trained controls (--controls: frozen random decoder, frozen
#      random encoder, each trained with the SAE's own config: width, k, budget, seed);
#   3. the same SAEs on the word form x meaning set (wordnet-2x2, test split, unbalanced);
#   4. the same SAEs on WiC test with --multi-token last and --multi-token mean;
#   5. the nine Gemma-3-270m TopK SAEs of configs/results-gemma3-270m.yaml on wordnet-2x2;
#   6. paired tests, figures (pseval plot) and the tables and CSVs (scripts/beyond_paper_tables.py; the 2 x 2
#      numbers go to docs/results/wordform_2x2.csv, whose tables scripts/results_tables.py writes into
#      docs/results.md).
# The 2 x 2 part alone (steps 1, 3 and 5, then its figures, CSV and tables; no controls, no multi-token runs):
#   bash scripts/beyond_paper.sh wordform
# GEMMA=FOLDER names another folder holding the nine Gemma SAEs under saes/ (default runs/results-gemma3-270m);
# PSEVAL may be a command with arguments (PSEVAL="python -m pseval").
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE="${HF_HUB_OFFLINE:-1}"
PSEVAL="${PSEVAL:-pseval}"
PYTHON="${PYTHON:-python}"
MODE="${1:-all}"
case "$MODE" in all | wordform) ;; *) echo "usage: $0 [all|wordform]" >&2; exit 2 ;; esac

RUN=runs/beyond-paper-smollm2
SAES=()
for arch in topk batchtopk matryoshka_batchtopk; do
  SAES+=(--sae "$RUN/saes/L12-resid_post-$arch-x8-k32")
done

# 1. Train, evaluate on WiC test with the standard metrics.
$PSEVAL sweep configs/beyond-paper-smollm2.yaml

# 2. Trained controls, one SAE per command (so that each finished SAE's controls are kept on their own).
if [ "$MODE" = all ]; then
  for arch in topk batchtopk matryoshka_batchtopk; do
    $PSEVAL eval --sae "$RUN/saes/L12-resid_post-$arch-x8-k32" --controls --interpret-tokens 0 --out "$RUN/controls"
  done
fi

# 3. Word form x meaning (every cell is fixed by construction: no label balancing).
$PSEVAL eval "${SAES[@]}" --dataset wordnet-2x2 --no-balance --interpret-tokens 0 --out "$RUN/wordform"

# 4. Words of several tokens: read the last sub-token, or the mean of the sub-tokens.
if [ "$MODE" = all ]; then
  for policy in last mean; do
    $PSEVAL eval "${SAES[@]}" --multi-token "$policy" --no-baselines --interpret-tokens 0 \
      --out "$RUN/multi-token-$policy"
  done
fi

# 5. Gemma-3-270m: the TopK SAEs of docs/results.md's Gemma section, trained by
#    `pseval sweep configs/results-gemma3-270m.yaml` (run it first when $GEMMA is missing).
GEMMA="${GEMMA:-runs/results-gemma3-270m}"
if [ ! -d "$GEMMA/saes" ]; then $PSEVAL sweep configs/results-gemma3-270m.yaml --out "$GEMMA"; fi
GEMMA_SAES=()
for layer in 3 9 15; do
  for kind in resid_post attn_out mlp_out; do
    GEMMA_SAES+=(--sae "$GEMMA/saes/L$layer-$kind-topk-x4-k32")
  done
done
$PSEVAL eval --model gemma3-270m "${GEMMA_SAES[@]}" --dataset wordnet-2x2 --no-balance --interpret-tokens 0 \
  --out runs/beyond-paper-gemma3-270m/wordform

# 6. Paired tests, figures, tables.
if [ "$MODE" = all ]; then
  $PSEVAL compare "$RUN/results/ps_eval/L12-resid_post-batchtopk-x8-k32_eval_results.json" \
    "$RUN/results/ps_eval/L12-resid_post-matryoshka_batchtopk-x8-k32_eval_results.json"
fi
$PSEVAL plot "$RUN/wordform"
$PSEVAL plot runs/beyond-paper-gemma3-270m/wordform
if [ "$MODE" = all ]; then
  "$PYTHON" scripts/beyond_paper_tables.py --smollm2 "$RUN" --gemma runs/beyond-paper-gemma3-270m \
    --csv docs/results/beyond_paper_summary.csv --wordform-csv docs/results/wordform_2x2.csv
else
  "$PYTHON" scripts/beyond_paper_tables.py --smollm2 "$RUN" --gemma runs/beyond-paper-gemma3-270m \
    --only-wordform --wordform-csv docs/results/wordform_2x2.csv
fi
"$PYTHON" scripts/results_tables.py --write docs/results.md
cp "$RUN/wordform/figures/wordform_2x2.png" docs/results/wordform_2x2_smollm2.png
cp runs/beyond-paper-gemma3-270m/wordform/figures/wordform_2x2.png docs/results/wordform_2x2_gemma3_270m.png
if [ "$MODE" = all ]; then
  # The FVU over all held-out tokens against the FVU without the massive-activation tokens.
  "$PYTHON" scripts/fvu_massive_activations.py --tokens 8192 "$RUN"/saes/L12-resid_post-*-x8-k32
fi
