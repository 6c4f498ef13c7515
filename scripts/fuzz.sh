#!/bin/bash
# Builds the libFuzzer harnesses of fuzz/ (clang, AddressSanitizer, UndefinedBehaviorSanitizer)
# in build-fuzz/ and runs each for SECONDS (default 600) from a seed corpus made of the test
# fixtures' kind of files (real torch.save, numpy, PIL and scipy outputs). A crash, leak,
# timeout or sanitizer report leaves its input in build-fuzz/findings/<target>/ and makes the
# script fail; each finding becomes a regression test in the normal suite (fuzz/README.md).
#
#   scripts/fuzz.sh [SECONDS-PER-TARGET] [TARGET...]
#
# The summary (executions per second, coverage) goes to build-fuzz/fuzz_summary.md.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-600}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(torch_checkpoint safetensors npy indexed_png lassie_csv pascal_mat config boxes_csv)
source "$(dirname "$0")/lib/common.sh"
python=$(lepard_python torch)
[ -n "$python" ] || { echo "$(basename "$0"): no python3 with torch (apt-get install python3-torch)" >&2; exit 1; }
for tool in clang++ "$python"; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool is missing (apt-get install clang python3-torch)" >&2; exit 1; }
done
cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ -DLEPARD_FUZZ=ON \
  -DLEPARD_BUILD_TESTS=OFF -DLEPARD_BUILD_BENCH=OFF -DLEPARD_BUILD_APPS=OFF >/dev/null
cmake --build build-fuzz -j"$(nproc)" --target $(printf 'fuzz_%s ' "${targets[@]}")

seeds=build-fuzz/seeds
rm -rf "$seeds"
mkdir -p "$seeds"
"$python" fuzz/make_seeds.py "$seeds"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
summary=build-fuzz/fuzz_summary.md
{
  echo "| target | seconds | runs | exec/s | coverage (edges) | features | corpus | findings |"
  echo "|---|---|---|---|---|---|---|---|"
} >"$summary"
failed=0
for t in "${targets[@]}"; do
  corpus=build-fuzz/corpus/$t
  findings=build-fuzz/findings/$t
  mkdir -p "$corpus" "$findings"
  cp -n "$seeds/$t"/* "$corpus"/ 2>/dev/null || true
  log=build-fuzz/fuzz_$t.log
  stamp=build-fuzz/.start_$t
  touch "$stamp"
  set +e
  ./build-fuzz/fuzz/fuzz_$t "$corpus" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=4096 -max_len=65536 \
    -artifact_prefix="$findings/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  fuzz_stat() { awk -v k="$1" '$1 == k { v = $2 } END { print v + 0 }' "$log"; }
  runs=$(fuzz_stat stat::number_of_executed_units:)
  eps=$(fuzz_stat stat::average_exec_per_sec:)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || true)
  cov=${cov:-0}
  ft=${ft:-0}
  n=$(find "$corpus" -type f | wc -l)
  found=$(find "$findings" -type f -newer "$stamp" | wc -l)  # this run's (older ones stay for reference)
  echo "| $t | $seconds | $runs | $eps | $cov | $ft | $n | $found |" >>"$summary"
  echo "fuzz_$t: exit $rc, $runs runs, $eps exec/s, cov $cov, $found findings"
  if [ "$rc" -ne 0 ] || [ "$found" -gt 0 ]; then failed=1; tail -40 "$log"; fi
done
cat "$summary"
exit "$failed"
