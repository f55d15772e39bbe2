#!/bin/bash
# README "Fine-tune on your own data" round trip, timed: fine-tune (CSV), then predict a CSV, one thread on core 0.
. /work/main/.venv/bin/activate
export PYTHONPATH=/work/study-tree/src OMP_NUM_THREADS=1
cd /tmp/i18/csv && rm -rf /tmp/q/rt && mkdir -p /tmp/q/rt
s=$(date +%s.%N)
taskset -c 0 tokenmix finetune --train-file train.csv --validation-file dev.csv --test-file new.csv \
  --text-column review --label-column sentiment --init scratch --model fnet --preset mini --tokenizer /tmp/i18/tok \
  --lr 3e-4 --epochs 1 --out /tmp/q/rt/reviews > /tmp/q/rt/finetune.log 2>&1
e=$(date +%s.%N); echo "finetune wall $(echo "$e - $s" | bc) s"; tail -6 /tmp/q/rt/finetune.log
s=$(date +%s.%N)
taskset -c 0 tokenmix predict --model /tmp/q/rt/reviews --input new.csv --output /tmp/q/rt/predictions.csv > /tmp/q/rt/predict.log 2>&1
e=$(date +%s.%N); echo "predict wall $(echo "$e - $s" | bc) s"; head -3 /tmp/q/rt/predictions.csv
