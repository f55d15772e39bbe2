#!/usr/bin/env bash
# Copy the small files of a budget study (`tokenmix reproduce --scale budget --out STUDY_DIR`) into the
# repository: REPORT.md, the learning curves, every summary, config and metrics file, the GLUE scores and
# test-set submission files, the speed table. Weights, checkpoints, locks and the working data stay behind, and
# so do the copies that would repeat: each fine-tuned model's tokenizer (the study's one, in work/) and each
# task's test_predictions.tsv (the same rows as the seed's submission/ file).
#
#   bash results/budget/collect.sh STUDY_DIR [DEST]        # DEST defaults to results/budget/study
set -euo pipefail
src=${1:?usage: bash results/budget/collect.sh STUDY_DIR [DEST]}
dest=${2:-results/budget/study}
[ -f "$src/REPORT.md" ] || { echo "collect.sh: $src has no REPORT.md: not a study folder" >&2; exit 1; }
mkdir -p "$dest"
tar -C "$src" --exclude=./work --exclude=checkpoints --exclude='*.safetensors' --exclude='*.pt' \
    --exclude='*.bin' --exclude='*.lock' --exclude='tokenizer*.json' --exclude=test_predictions.tsv -cf - . | tar -C "$dest" -xf -
du -sh "$dest"
