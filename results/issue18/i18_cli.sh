#!/bin/bash
# Issue 18 figures with the real CLI, one dedicated core (taskset -c 1), one thread, precision auto (bf16 here).
set -e
. /work/main/.venv/bin/activate
cd /work/main
export OMP_NUM_THREADS=1
O=/tmp/q/i18
rm -rf $O; mkdir -p $O
for m in fnet bert; do
  /usr/bin/time -v taskset -c 1 tokenmix finetune --task sst2 --init scratch --model $m --preset mini --tokenizer /tmp/i18/tok \
    --data-dir ../shared/data/glue --epochs 1 --batch-size 32 --lr 1e-4 --seed 0 --eval-every 0 --out $O/$m > $O/$m.log 2> $O/$m.err
  python - <<PY
import json; m=json.load(open("$O/$m/metrics.json")); print("$m", {k: m.get(k) for k in ("steps","steps_per_s","train_seconds")}, m["splits"])
PY
done
# predict: SST-2 dev as a CSV (text column), both models, wall clock
python - <<'PY'
import csv
rows = [l.rstrip("\n").split("\t") for l in open("../shared/data/glue/SST-2/train.tsv")][1:20001]
with open("/tmp/q/i18/input.csv", "w", newline="") as f:
    w = csv.writer(f); w.writerow(["sentence", "label"]); w.writerows(rows)
PY
for m in fnet bert; do
  for r in 1 2 3; do
    s=$(date +%s.%N); taskset -c 1 tokenmix predict --model $O/$m/best --input $O/input.csv --text-column sentence --output $O/pred_${m}_$r.csv > /dev/null 2>&1; e=$(date +%s.%N)
    echo "predict $m round $r wall $(echo "$e - $s" | bc) s"
  done
done
