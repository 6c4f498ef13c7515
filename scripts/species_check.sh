#!/bin/bash
# Every species of the synthetic menagerie, at several seeds, through lepard-synth,
# lepard-prepare (the DINO surrogate) and one training step, each with default flags: the
# check that no generated set stops the tools (a sample its own reader rejects once stopped
# a whole set). Each dataset is deleted after its check unless --keep is given (1,200
# images take about 3 GB).
#
#   scripts/species_check.sh [--seeds "1 2 3"] [--count 1200] [--species "horse cow ..."]
#                            [--build build] [--keep] OUT
#
# Writes OUT/species_check.md (one row per species and seed: images read, mask-box crops,
# skipped, the pseudo-labels' IoU against ground truth, the training step's exit code and
# seconds per stage) and OUT/<species>_<seed>/*.txt logs; exits 1 if any stage failed.
set -uo pipefail
cd "$(dirname "$0")/.."
seeds="1 2 3"
count=1200
species="horse cow sheep zebra tiger giraffe elephant kangaroo penguin"
build=build
keep=0
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --seeds) seeds=$2; shift 2 ;;
    --count) count=$2; shift 2 ;;
    --species) species=$2; shift 2 ;;
    --build) build=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    -h|--help) sed -n 2,14p "$0"; exit 0 ;;
    -*) echo "species_check.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "species_check.sh: give an output folder (see --help)" >&2; exit 2; }
for tool in lepard-synth lepard-prepare lepard-train; do
  [ -x "$build/apps/$tool" ] || { echo "species_check.sh: $build/apps/$tool is missing (build first)" >&2; exit 2; }
done
mkdir -p "$out"
summary=$out/species_check.md
{
  echo "| species | seed | images | read | mask-box crops | skipped | pseudo-label IoU | part IoU | train step | synth s | prepare s | train s |"
  echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
} >"$summary"
failed=0
for s in $species; do
  for seed in $seeds; do
    dir=$out/${s}_$seed
    rm -rf "$dir"
    mkdir -p "$dir"
    t0=$(date +%s)
    "$build/apps/lepard-synth" --category "$s" --count "$count" --seed "$seed" --out "$dir/data" --contact-sheet 0 \
      >"$dir/synth.txt" 2>&1
    synth_rc=$?
    t1=$(date +%s)
    "$build/apps/lepard-prepare" --data "$dir/data" --surrogate --out "$dir/data/cache" --contact-sheet 0 \
      >"$dir/prepare.txt" 2>&1
    prepare_rc=$?
    t2=$(date +%s)
    # Every other key keeps its default (lepard-train --help lists them).
    printf 'data:\n  root: %s\n  category: %s\ntrain:\n  out: %s\n' "$dir/data" "$s" "$dir/train" >"$dir/train.yaml"
    "$build/apps/lepard-train" --config "$dir/train.yaml" --stop-after 1 >"$dir/train.txt" 2>&1
    train_rc=$?
    t3=$(date +%s)
    images=$(find "$dir/data/images/$s" -name 'input_*.png' 2>/dev/null | wc -l)
    read_n=$(grep -o "^$s: [0-9]* images (" "$dir/prepare.txt" | head -1 | grep -o '[0-9]*' || true)
    crops=$(grep -o "$s: [0-9]* images have fewer than two" "$dir/prepare.txt" | head -1 | grep -o '[0-9]*' || true)
    skipped=$(grep -c 'skipping:' "$dir/prepare.txt" || true)
    iou=$(grep -o 'overall IoU [0-9.]*' "$dir/prepare.txt" | tail -1 | grep -o '[0-9.]*$' || true)
    part=$(grep -o 'part IoU [0-9.]*' "$dir/prepare.txt" | tail -1 | grep -o '[0-9.]*$' || true)
    step="exit $train_rc"
    [ "$synth_rc" -eq 0 ] && [ "$prepare_rc" -eq 0 ] && [ "$train_rc" -eq 0 ] || {
      failed=1
      step="$step (synth $synth_rc, prepare $prepare_rc)"
      tail -n 5 "$dir"/*.txt
    }
    echo "| $s | $seed | $images | ${read_n:--} | ${crops:-0} | $skipped | ${iou:--} | ${part:--} | $step | $((t1 - t0)) | $((t2 - t1)) | $((t3 - t2)) |" \
      | tee -a "$summary"
    [ "$keep" -eq 1 ] || rm -rf "$dir/data" "$dir/train"
  done
done
exit $failed
