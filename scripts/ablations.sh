#!/bin/bash
# The ablations of the part-discovery issue, each row trained with two seeds, then scored in
# one table by one lepard-eval command: the full recipe; plain autograd with unit group
# weights; no local deformation; no collisions; rigid superquadrics (no taper or bend).
# Every row is the shipped benchmark config with one switch changed.
#
#   scripts/ablations.sh [--config configs/synthetic_horse_1200.yaml] [--steps 3600]
#                        [--seeds "1 2"] [--threads 2] [--procs 1] [--port 29561]
#                        [--bin build/apps] [--data runs/h1200]
#                        [--rows "full autograd nolocal nocollision rigid"] [--overlays 24]
#                        [--eval-only] OUT
#
# --steps shortens the whole schedule (warm-up, decay, annealing and staging all scale with
# it), for pilots. --bin names the folder of the tools: copy them aside first when the build
# folder may change during the runs. Writes OUT/<row>_s<seed>/ (runs), OUT/<row>_s<seed>.txt
# (logs), OUT/eval/ (lepard-eval's report) and OUT/ablations.md (the table and the commands);
# a row already trained (its summary.json exists) is not trained again, so a run trained
# elsewhere with the same recipe can stand in as a row (a link OUT/full_s0 -> its folder).
# --procs N trains each run data-parallel, as N processes of --threads threads on this
# machine (rendezvous on 127.0.0.1:--port); the benchmark configs' figures are from
# --procs 2 --threads 1, which is faster on 2 cores than one process of two threads.
# --eval-only trains nothing and scores every row and seed given, all of which must be trained:
# the way to one table after the seeds were trained by separate calls (each call's own
# evaluation covers only the rows and seeds it was given).
# --overlays N is lepard-eval's: overlay crops per run in the report (0: none, fastest).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
config=configs/synthetic_horse_1200.yaml
steps=""
seeds="1 2"
threads=2
procs=1
port=29561
bin=build/apps
data=""
rows="full autograd nolocal nocollision rigid"
eval_only=0
overlays=""
out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --config) config=$2; shift 2 ;;
    --steps) steps=$2; shift 2 ;;
    --seeds) seeds=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --procs) procs=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --data) data=$2; shift 2 ;;
    --rows) rows=$2; shift 2 ;;
    --eval-only) eval_only=1; shift ;;
    --overlays) overlays=$2; shift 2 ;;
    -h|--help) sed -n 2,25p "$0"; exit 0 ;;
    -*) echo "ablations.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
    *) out=$1; shift ;;
  esac
done
[ -n "$out" ] || { echo "ablations.sh: give an output folder (see --help)" >&2; exit 2; }
case "$overlays" in *[!0-9]*) echo "ablations.sh: --overlays $overlays: give a whole number (0: none)" >&2; exit 2 ;; esac
case "$procs" in ''|*[!0-9]*|0) echo "ablations.sh: --procs $procs: give a whole number of at least 1" >&2; exit 2 ;; esac
[ -f "$config" ] || { echo "ablations.sh: --config $config: no such file" >&2; exit 2; }
for tool in lepard-train lepard-eval; do
  [ -x "$bin/$tool" ] || { echo "ablations.sh: $bin/$tool is missing (build first)" >&2; exit 2; }
done
switch() {
  case "$1" in
    full) echo "" ;;
    autograd) echo "--set loss.generalized_forces=false" ;;
    nolocal) echo "--set model.local_deformation=false" ;;
    nocollision) echo "--set loss.collision=0" ;;
    rigid) echo "--set model.rigid=true" ;;
    *) echo "ablations.sh: unknown row $1 (full autograd nolocal nocollision rigid)" >&2; return 2 ;;
  esac
}
label() {
  case "$1" in
    full) echo "full recipe" ;;
    autograd) echo "plain autograd, unit weights" ;;
    nolocal) echo "no local deformation" ;;
    nocollision) echo "no collisions" ;;
    rigid) echo "rigid superquadrics" ;;
  esac
}
for row in $rows; do switch "$row" >/dev/null || exit 2; done
[ $eval_only -eq 1 ] || mkdir -p "$out"
common="--threads $threads --set train.validate_every=100000 --set train.checkpoint_every=100000"
[ -n "$steps" ] && common="$common --set train.steps=$steps"
[ -n "$data" ] && common="$common --set data.root=$data --set data.cache=$data/cache"
eval_args=()
failed=0
if [ $eval_only -eq 1 ]; then
  missing=0
  for row in $rows; do
    for seed in $seeds; do
      [ -f "$out/${row}_s$seed/summary.json" ] \
        || { echo "ablations.sh: --eval-only: $out/${row}_s$seed/summary.json is missing (train it first)" >&2; missing=1; }
    done
  done
  [ $missing -eq 0 ] || exit 2
fi
for row in $rows; do
  sw=$(switch "$row") || exit 2
  for seed in $seeds; do
    run=$out/${row}_s$seed
    if [ ! -f "$run/summary.json" ]; then
      echo "== $row seed $seed: $(date -u +%H:%M:%S)"
      # shellcheck disable=SC2206
      train=("$bin/lepard-train" --config "$config" $common $sw --set train.seed="$seed" --set train.out="$run")
      others=()
      for ((r = 1; r < procs; r++)); do
        MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$procs RANK=$r "${train[@]}" >"$run.r$r.txt" 2>&1 &
        others+=($!)
      done
      MASTER_ADDR=127.0.0.1 MASTER_PORT=$port WORLD_SIZE=$procs RANK=0 "${train[@]}" >"$run.txt" 2>&1
      rc=$?
      for pid in "${others[@]}"; do wait "$pid" || rc=1; done
      echo "rc=$rc" >>"$run.txt"
      [ $rc -eq 0 ] || { echo "ablations.sh: $row seed $seed failed (see $run.txt)" >&2; failed=1; continue; }
    fi
    eval_args+=(--checkpoint "$run" --name "$(label "$row"), seed $seed")
  done
done
[ ${#eval_args[@]} -gt 0 ] || exit 1
evaluation_data=${data:-$(sed -n 's/^  root: *//p' "$config" | head -n 1)}
cache=${data:+$data/cache}
cache=${cache:-$(sed -n 's/^  cache: *//p' "$config" | head -n 1)}
eval_opts=()
[ -d "$cache" ] && eval_opts=(--pseudo-labels "$cache")
[ -n "$overlays" ] && eval_opts+=(--overlays "$overlays")
"$bin/lepard-eval" "${eval_opts[@]}" "${eval_args[@]}" --data "$evaluation_data" --out "$out/eval" >"$out/eval.txt" 2>&1 \
  || { echo "ablations.sh: lepard-eval failed (see $out/eval.txt)" >&2; exit 1; }
{
  if [ $eval_only -eq 1 ]; then
    echo "# Ablations: $config, seeds $seeds (scored only: the runs' own config.yaml and summary.json say how they trained)"
  else
    echo "# Ablations: $config${steps:+, $steps steps}, seeds $seeds, $procs process(es) of $threads thread(s)"
  fi
  echo
  for row in $rows; do
    for seed in $seeds; do
      s=$out/${row}_s$seed/summary.json
      [ -f "$s" ] && echo "- $(label "$row"), seed $seed: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('%.0f s, %.1f images/s' % (d['seconds'], d['images_per_s']))" "$s" 2>/dev/null)"
    done
  done
  echo
  sed -n '/^| model/,/^$/p' "$out/eval.txt"
} >"$out/ablations.md"
cat "$out/ablations.md"
exit $failed
