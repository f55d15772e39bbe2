#!/bin/bash
# Issue 18: FNet-mini dev accuracy on SST-2, length buckets (auto) vs fixed 128 padding, 3 seeds, 1 epoch of the
# full training set from scratch (same tokenizer, lr 1e-4, batch 32), the real CLI. Accuracy only (timing-free).
. /work/main/.venv/bin/activate
cd /work/main
export OMP_NUM_THREADS=1
O=/tmp/q/i18acc; mkdir -p $O
for seed in 0 1 2; do
  for spec in auto fixed; do
    [ -f $O/$spec-$seed/metrics.json ] && continue
    taskset -c 0 nice -n 10 tokenmix finetune --task sst2 --init scratch --model fnet --preset mini --tokenizer /tmp/i18/tok \
      --data-dir ../shared/data/glue --epochs 1 --batch-size 32 --lr 1e-4 --seed $seed --eval-every 0 \
      --length-buckets $spec --out $O/$spec-$seed --overwrite > $O/$spec-$seed.log 2>&1
    python -c "import json; m=json.load(open('$O/$spec-$seed/metrics.json')); print('$spec', $seed, m['splits']['dev']['accuracy'], m['train_seconds'])"
  done
done
