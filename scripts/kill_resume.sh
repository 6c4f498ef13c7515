#!/bin/bash
# Crash safety, shown: kills lepard-train with SIGKILL at random moments (a checkpoint is
# written after every step, so many kills land inside a write), resumes after each kill,
# and checks that the finished run's parameters and optimiser state equal an uninterrupted
# run's exactly (largest difference 0). Then the same for lepard-prepare's cache: a run
# killed during its work, rerun, gives the cache a clean run gives, file for file.
#
#   scripts/kill_resume.sh BUILD_DIR WORK_DIR [KILLS=20] [SEED=1]
#
# Needs a python3 with torch (Debian python3-torch; $LEPARD_PYTHON or the first such on
# PATH) to read the checkpoints.
set -euo pipefail
build=$1
work=$2
kills=${3:-20}
seed=${4:-1}
source "$(dirname "$0")/lib/common.sh"
python=$(lepard_python torch)
[ -n "$python" ] || { echo "$(basename "$0"): no python3 with torch (apt-get install python3-torch)" >&2; exit 1; }
train=$build/apps/lepard-train
prepare=$build/apps/lepard-prepare
synth=$build/apps/lepard-synth
RANDOM=$seed
rm -rf "$work"
mkdir -p "$work"
"$synth" --out "$work/data" --count 16 --size 64 --seed 3 --contact-sheet 0 >/dev/null 2>&1
"$prepare" --data "$work/data" --surrogate --out "$work/cache" --surrogate-grid 16 --restarts 1 --crop-size 64 \
  --threads 1 >/dev/null 2>&1
cat >"$work/config.yaml" <<YAML
data:
  root: $work/data
  cache: $work/cache
  crop_size: 64
  test_fraction: 0.25
model:
  parts: 4
  image_size: 32
  encoder_depth: 2
  encoder_width: 8
  hidden: 32
  rings: 6
  segments: 8
loss:
  render_size: 16
train:
  steps: 60
  batch_size: 2
  warmup: 2
  checkpoint_every: 1
  validate_every: 1000
  log_every: 1
YAML

# The kills are timed from this machine's own speed: the start-up (a run of one step) and the
# training time of the uninterrupted run, so that a fast machine is not left killing runs that
# have already finished.
elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { print b - a }'; }
start=$(date +%s.%N)
"$train" --config "$work/config.yaml" --set train.out="$work/reference" --threads 1 >/dev/null 2>&1
total=$(elapsed "$start")
start=$(date +%s.%N)
"$train" --config "$work/config.yaml" --set train.out="$work/probe" --threads 1 --stop-after 1 >/dev/null 2>&1
startup=$(elapsed "$start")
# Each kill lands at a random moment of the first half of a whole run's training time.
window=$(awk -v s="$startup" -v t="$total" 'BEGIN { w = (t - s) / 2; printf "%.3f", (w > 0.05 ? w : 0.05) }')
echo "start-up ${startup} s, uninterrupted run ${total} s: kills within ${window} s after start-up"

# Resume where a checkpoint was written; a kill before the first one leaves none, so start over.
run_args() {
  if [ -f "$work/run/checkpoint.pt" ]; then
    args=(--resume "$work/run")
  else
    args=(--config "$work/config.yaml" --set train.out="$work/run")
  fi
}

done_kills=0
attempts=0
while [ "$done_kills" -lt "$kills" ]; do
  attempts=$((attempts + 1))
  if [ "$attempts" -gt $((kills * 5)) ]; then echo "kill_resume: the run kept finishing before the kill" >&2; exit 1; fi
  run_args
  "$train" "${args[@]}" --threads 1 >>"$work/train.log" 2>&1 &
  pid=$!
  delay=$(awk -v s="$startup" -v w="$window" -v r="$RANDOM" 'BEGIN { printf "%.3f", s + w * (r % 1000) / 1000 }')
  sleep "$delay"
  if kill -9 "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    done_kills=$((done_kills + 1))
    step=$(tail -c 4000 "$work/run/metrics.jsonl" 2>/dev/null | grep -o '"step":[0-9]*' | tail -1 | cut -d: -f2 || true)
    echo "kill $done_kills after ${delay} s (last logged step ${step:-none})"
  else
    wait "$pid" || { echo "kill_resume: lepard-train failed on its own; see $work/train.log" >&2; exit 1; }
    echo "the run finished before the kill; starting it again"
    rm -rf "$work/run"
  fi
done
run_args
"$train" "${args[@]}" --threads 1 >>"$work/train.log" 2>&1 ||
  { echo "kill_resume: the last run failed; see $work/train.log" >&2; exit 1; }

"$python" - "$work/reference/checkpoint.pt" "$work/run/checkpoint.pt" <<'PY'
import sys, zipfile, torch
ref, run = sys.argv[1:3]
# Model parameters, compared as numbers.
a, b = (dict(torch.jit.load(p, map_location="cpu").named_parameters()) for p in (ref, run))
assert a.keys() == b.keys(), "the checkpoints hold different parameters"
worst = max((a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel())
# Every tensor storage of the archives (model, Adam's moments, step), compared as bytes. The
# archive numbers its storages in the order it meets them, which differs between a fresh and
# a resumed optimiser, so the storages are compared as a multiset of their bytes.
za, zb = zipfile.ZipFile(ref), zipfile.ZipFile(run)
sa = sorted(za.read(n) for n in za.namelist() if "/data/" in n)
sb = sorted(zb.read(n) for n in zb.namelist() if "/data/" in n)
differ = len(sa) != len(sb) or any(x != y for x, y in zip(sa, sb))
print(f"{len(a)} parameters: largest difference {worst:g}; {len(sa)} tensor storages (model, optimiser state, "
      f"step): {'not ' if differ else ''}identical")
sys.exit(0 if worst == 0.0 and not differ else 1)
PY

# lepard-prepare: killed during its work, rerun: the same cache as a clean run.
"$prepare" --data "$work/data" --surrogate --out "$work/clean_cache" --surrogate-grid 16 --restarts 1 --crop-size 64 \
  --threads 1 >/dev/null 2>&1
for i in 1 2 3 4 5; do
  "$prepare" --data "$work/data" --surrogate --out "$work/killed_cache" --surrogate-grid 16 --restarts 1 --crop-size 64 \
    --threads 1 --force >/dev/null 2>&1 &
  pid=$!
  sleep "$(awk -v r="$RANDOM" 'BEGIN { printf "%.3f", (r % 1500) / 1000 }')"
  kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
done
"$prepare" --data "$work/data" --surrogate --out "$work/killed_cache" --surrogate-grid 16 --restarts 1 --crop-size 64 \
  --threads 1 >/dev/null 2>&1
differ=0
for f in $(cd "$work/clean_cache" && find labels features saliency -type f | sort); do
  cmp -s "$work/clean_cache/$f" "$work/killed_cache/$f" || { echo "differs after kills: $f"; differ=1; }
done
n=$(cd "$work/clean_cache" && find labels features saliency -type f | wc -l)
[ "$differ" -eq 0 ] && echo "lepard-prepare: $n cache files identical to a clean run's after 5 kills"
exit "$differ"
