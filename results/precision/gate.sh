#!/bin/bash
# Issue 21 gate for --precision auto: pretraining loss curves, fp32 vs bf16, 3 seeds x 1000 steps, mini @128,
# batch 16, MLM only, no dropout, lr 1e-3 (warm-up 100, linear to 0 at 1000), the study's 8k-piece data.
# One thread on core 0 (timing is not the point). Rerun to continue: finished runs are skipped.
. /work/main/.venv/bin/activate
cd /work/main
export OMP_NUM_THREADS=1
O=/work/runs/gate; mkdir -p $O
for model in ${MODELS:-fnet bert}; do
 for seed in 0 1 2; do
  for prec in bf16 fp32; do
    out=$O/$model-$prec-$seed
    [ -f $out/summary.json ] && continue
    resume=(); [ -d $out ] && resume=(--resume)
    taskset -c 0 nice -n 10 tokenmix pretrain --model $model --preset mini --data /work/runs/budget/work/data \
      --nsp none --override dropout=0.0,attention_dropout=0.0 --batch-size 16 --learning-rate 1e-3 \
      --warmup-steps 100 --max-steps 1000 --seed $seed --precision $prec --eval-every 250 --eval-batches 10 \
      --save-every 250 --out $out "${resume[@]}" > $out.log 2>&1
    tail -1 $out.log
  done
 done
done
