#!/usr/bin/env bash
# ViT-S/8 feature extraction (key facet + saliency, one image) at 224 and 448: the C++
# module against the same network run by Debian's Python PyTorch, in one session, with
# the same weights (random, written by torch.save). Each run is its own process, so each
# peak RSS is that run's. Python runs twice: as users run it (the default environment)
# and with OMP_WAIT_POLICY=passive, which lepard's tools set for themselves (apps/cli).
# Usage: bench/vit_comparison.sh [BUILD_DIR] [REPEATS]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
build="${1:-$here/../build}"
repeats="${2:-3}"
threads="$(nproc)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
/usr/bin/python3 "$here/python/bench_vit.py" --write-weights "$work/vit_small8.pth"
for size in 224 448; do
  args=(--weights "$work/vit_small8.pth" --size "$size" --repeats "$repeats" --threads "$threads")
  py="$(env -u OMP_WAIT_POLICY /usr/bin/python3 "$here/python/bench_vit.py" "${args[@]}")"
  pp="$(OMP_WAIT_POLICY=passive /usr/bin/python3 "$here/python/bench_vit.py" "${args[@]}")"
  cc="$("$build/bench/bench_vit" --weights "$work/vit_small8.pth" --size "$size" --repeats "$repeats" --threads "$threads")"
  echo "$py (default environment)"
  echo "$pp (OMP_WAIT_POLICY=passive)"
  echo "$cc"
  p="$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$py")"
  q="$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$pp")"
  c="$(sed -E 's/.*median_ms=([0-9.]+).*/\1/' <<<"$cc")"
  awk -v p="$p" -v q="$q" -v c="$c" -v s="$size" 'BEGIN { printf "size %d: C++ median %.0f ms: %.1fx faster than Python (%.0f ms), %.1fx faster than Python with passive OpenMP (%.0f ms)\n", s, c, p / c, p, q / c, q }'
done
