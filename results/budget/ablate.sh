#!/usr/bin/env bash
# Issue 21 budget-recipe ablations: FNet-mini pretraining for the same 600 s of training clock, the study's
# setting (`--recipe budget` with pre-LN, 8k vocabulary, the study's Wikipedia shards) with ONE choice turned
# back to the paper's value per run, plus a second seed of the base as the noise reference. Each run is spelled
# out under --recipe paper, since a flag set to its paper value cannot be told from the default.
# One thread on one core (CORE, default 0). Rerun to continue: finished runs are skipped, unfinished ones resume.
#   bash results/budget/ablate.sh            # then: python results/budget/ablate.py RUNS > results/budget/ablations.md
set -euo pipefail
RUNS=${RUNS:-/work/runs/ablate}
WORK=${WORK:-/work/runs/budget/work}      # corpus.txt, tokenizer/ and data/ of `reproduce --scale budget`
CORE=${CORE:-0}
MODEL=${MODEL:-fnet}
export OMP_NUM_THREADS=1
mkdir -p "$RUNS"

if [ ! -f "$RUNS/data32k/meta.json" ]; then   # the 32k-piece vocabulary of the paper recipe, same corpus
  [ -f "$RUNS/tok32k/tokenizer.json" ] || taskset -c "$CORE" tokenmix tokenizer train --input "$WORK/corpus.txt" \
    --vocab-size 32000 --out "$RUNS/tok32k" --overwrite
  taskset -c "$CORE" tokenmix data prepare --input "$WORK/corpus.txt" --tokenizer "$RUNS/tok32k" --out "$RUNS/data32k"
fi

run() {  # NAME [flag=value ...]: base settings with the named ones replaced
  local name=$1 out=$RUNS/$1; shift
  declare -A f=([nsp]=none [schedule]=budget [learning-rate]=1e-3 [warmup-steps]=300 [batch-size]=64
                [seed]=0 [data]=$WORK/data [override]=dropout=0.0,attention_dropout=0.0,norm_position=pre)
  local kv; for kv in "$@"; do f[${kv%%=*}]=${kv#*=}; done
  [ -f "$out/summary.json" ] && { echo "done: $name"; return; }
  local args=() k; for k in "${!f[@]}"; do args+=("--$k" "${f[$k]}"); done
  local resume=(); [ -d "$out" ] && resume=(--resume)
  taskset -c "$CORE" tokenmix pretrain --recipe paper --model "$MODEL" --preset mini "${args[@]}" --max-time 600 \
    --eval-every 100 --eval-batches 10 --save-every 100 --precision bf16 --out "$out" "${resume[@]}" > "$out.log" 2>&1
  tail -1 "$out.log"
}

run base
run base-seed1 seed=1
run nsp-swap nsp=swap
run schedule-linear schedule=linear
run dropout-0.1 override=dropout=0.1,attention_dropout=0.1,norm_position=pre
run batch-32 batch-size=32
run lr-5e-4 learning-rate=5e-4
run vocab-32k data="$RUNS/data32k"
run lr-2e-3 learning-rate=2e-3
run wsd-0.2 decay-fraction=0.2   # the fix the runs above point to: hold the peak, decay over the last fifth
