#!/usr/bin/env bash
# The budget study's pretraining again with a 90-minute schedule (the study's recipe, data and seed; only
# --max-time differs), BERT-mini and FNet-mini side by side, one thread on a core each: does a longer budget
# reach held-out MLM accuracy 0.30? Needs a finished study's working data (STUDY/work/data).
#
#   bash results/budget/longer/run.sh STUDY_DIR OUT_DIR        # then copy the small files beside this script
set -euo pipefail
study=${1:?usage: run.sh STUDY_DIR OUT_DIR}; out=${2:?usage: run.sh STUDY_DIR OUT_DIR}
core=0
for model in bert fnet; do
  OMP_NUM_THREADS=1 taskset -c $core tokenmix pretrain --model "$model" --preset mini --data "$study/work/data" \
    --out "$out/$model-90m" --recipe budget --override norm_position=pre --max-seq-len 128 \
    --max-predictions-per-seq 20 --batch-size 64 --learning-rate 1e-3 --warmup-steps 300 --max-time 5400 \
    --eval-every 200 --eval-batches 10 --save-every 200 --keep-checkpoints 1 --seed 0 > "$out/$model-90m.log" 2>&1 &
  core=$((core + 1))
done
wait
