#!/usr/bin/env bash
# Issue 22: LRA Text (IMDb bytes, first 1000), Image (CIFAR-10 grey levels, 1024 pixels) and Pathfinder-32
# hard for fnet, linear and bert at LRA's official model configurations (--preset lra), BUDGET seconds of
# training steps each (default 45 minutes; evaluations and data preparation come on top).
#
# Each run's --max-steps is set from the steps/s of that exact configuration (task, length, batch, model)
# measured just before it on this machine by `tokenmix lra speed`, so the learning-rate schedule ends inside
# the budget; --max-time stops the run anyway. The measurement is kept (runs/lra-probe/), so a rerun uses
# the same --max-steps. Interrupted? Run the script again: finished runs are skipped, an unfinished one
# continues from its newest checkpoint with --resume (its training clock continues too).
#
#   bash results/lra/runs.sh [text] [image] [pathfinder] [transfer]      # from the repository root, venv active
# IMDB=DIR reads Text from DIR (a folder with train.tsv.gz + test.tsv.gz: see rebuild_imdb_train.py beside this).
# transfer: each finished Pathfinder run scored on images of the *original* generator, PF_ORIGINAL=DIR in the
# official layout (made by pathfinder-original/measure.py CHECKOUT 32 14 2000 11 DIR); writes transfer.json.
# then: tokenmix lra table --runs results/lra --markdown results/lra/table.md --json results/lra/table.json
set -euo pipefail
BUDGET=${BUDGET:-2700}
DATA=${DATA:-../shared/data/lra}
MODELS=${MODELS:-fnet linear bert}

# BERT runs without attention dropout, so PyTorch's fused CPU attention applies: with it (LRA's 0.1-0.2) a
# step at 1024 tokens took 32-51 s at batch 64 (Image, Pathfinder; ~12 GiB), without it 5.6-9 s (0.5-0.7 GiB),
# so 45 minutes give BERT hundreds of steps instead of ~60. `lra table` lists the change under the table.
override() { [ "$1" = bert ] && echo "attention_dropout=0.0"; true; }
# bf16 where it pays (precision/ab.py: fp32 / bf16 step time, interleaved in one process): 1.5-2.6x for FNet
# and Linear on Image and Text, 1.04x for FNet and 1.8x for Linear on Pathfinder, 1.9x for BERT on Text,
# 1.02x for BERT on Image, but 0.79x for BERT on Pathfinder (head size 8), which therefore trains in fp32.
precision() { if [ "$1 $2" = "pathfinder32 bert" ]; then echo fp32; else echo auto; fi; }

steps_in_budget() {  # TASK LENGTH BATCH MODEL -> 90% of the steps that fit in BUDGET at the measured speed
  local probe=runs/lra-probe/$1-$4-b$3 spec=$4
  [ -n "$(override "$4")" ] && spec="$4:$(override "$4")"
  [ -f "$probe/speed.json" ] || nice -n 10 tokenmix lra speed --task "$1" --seq-lens "$2" --batch-size "$3" \
    --models "$spec" --baseline "$spec" --precision "$(precision "$1" "$4")" --warmup 2 --repeats 5 --max-memory-gb 20 --time-budget 900 --out "$probe" \
    --overwrite > /dev/null
  python -c "import json; r = json.load(open('$probe/speed.json'))['results'][0]; print(max(1, int(0.9 * r['steps_per_s'] * $BUDGET)))"
}

run() {  # TASK LENGTH BATCH MODEL NAME [flags of lra run]
  local task=$1 length=$2 batch=$3 model=$4 name=$5 out=runs/lra/$5
  shift 5
  if [ -f "$out/summary.json" ]; then echo "done: $out"; return; fi
  local steps extra=()
  steps=$(steps_in_budget "$task" "$length" "$batch" "$model")
  if [ -d "$out" ]; then extra=(--resume); fi
  if [ -n "$(override "$model")" ]; then extra+=(--override "$(override "$model")"); fi
  nice -n 10 tokenmix lra run "$task" --model "$model" --preset lra --precision "$(precision "$task" "$model")" \
    --batch-size "$batch" --max-len "$length" \
    --max-steps "$steps" --eval-every $(( steps / 8 > 0 ? steps / 8 : 1 )) --max-time "$BUDGET" --out "$out" \
    "${extra[@]}" "$@"
  mkdir -p "results/lra/$name" && cp "$out/summary.json" "$out/metrics.jsonl" "results/lra/$name/"
}

parts=("$@")
if [ ${#parts[@]} -eq 0 ]; then parts=(text image pathfinder); fi
for part in "${parts[@]}"; do
  for model in $MODELS; do
    case $part in
      # LRA: batch 32, lr 5e-4, weight decay 0.1; 1000 of 4095 bytes; 5,000 of the 25,000 test reviews.
      text) run text 1000 32 "$model" "text-1k-$model" --data-dir "${IMDB:-$DATA/imdb}" --eval-size 5000 ;;
      # LRA: batch 256, lr 5e-4; batch 64 here (BERT's attention at 256: an estimated 20 GiB or more).
      image) run image 1024 64 "$model" "image-$model" --data-dir "$DATA/cifar10" ;;
      # LRA: 160k images, batch 512, 200 epochs; here 60k/2k/2k images (generated once, ~15 CPU minutes,
      # shared by the three models), batch 64 (BERT held 12.5 GiB mid-step), the FNet recipe of the README.
      pathfinder) run pathfinder32 1024 64 "$model" "pathfinder32-hard-$model" --difficulty hard \
                    --train-size 60000 --eval-size 2000 --lr 1e-3 --warmup-ratio 0.02 ;;
      transfer) tokenmix lra eval pathfinder32 --checkpoint "runs/lra/pathfinder32-hard-$model" --split all \
                  --data-dir "${PF_ORIGINAL:?PF_ORIGINAL=DIR: images of the original generator}" \
                  --json "results/lra/pathfinder32-hard-$model/transfer.json" --overwrite ;;
      *) echo "unknown part $part: text, image, pathfinder or transfer" >&2; exit 2 ;;
    esac
  done
done
