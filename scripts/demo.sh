#!/usr/bin/env bash
# Installs what is missing (Debian packages), builds lepard, and runs the main job on
# the embedded default, ending in a report under runs/demo/.
#
# Today the main job covers geometry, rendering, data and features: a gallery of
# deformable primitives (superquadrics with tapering, bending and diffeomorphic local
# deformation) written as OBJ files and rendered to PNG sheets, a synthetic horse set from
# the menagerie with its contact sheet, and its pseudo-labels (lepard-prepare on the DINO
# surrogate: saliency, co-segmentation) with theirs, a short training run of the network
# on them (lepard-train, configs/synthetic_horse.yaml; DEMO_STEPS steps), inference on
# new synthetic horses (lepard-infer: meshes, overlays, turntables), evaluation on the
# held-out split (lepard-eval), and a self-contained HTML report, runs/demo/report.html
# (scripts/check_report.sh renders it in headless Chromium and checks every section).
#
# Environment: BUILD_DIR (default build), OUT (default runs/demo), CMAKE_ARGS,
# DEMO_STEPS (training steps, default 300: about 3 minutes on 2 cores).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh

ensure_packages "${LEPARD_PACKAGES[@]}"
build_dir="${BUILD_DIR:-build}"
out="${OUT:-runs/demo}"
# The demo needs the tools only: the tests and benchmarks are scripts/test.sh's to build.
# shellcheck disable=SC2086
lepard_build "$build_dir" -DLEPARD_BUILD_APPS=ON -DLEPARD_BUILD_TESTS=OFF -DLEPARD_BUILD_BENCH=OFF ${CMAKE_ARGS:-}

mkdir -p "$out"
lepard_log "writing the primitive gallery to ${out}/gallery"
rm -rf "${out}/gallery"
"${build_dir}/apps/lepard-gallery" --out "${out}/gallery" --random 4 --seed 1 | tee "${out}/gallery.txt"

lepard_log "generating 200 synthetic horses in ${out}/synth (the menagerie; see docs/data.md)"
rm -rf "${out}/synth"
"${build_dir}/apps/lepard-synth" --category horse --count 200 --size 256 --seed 1 --out "${out}/synth" \
  --contact-sheet 24

lepard_log "pseudo-labels from the DINO surrogate in ${out}/cache (see docs/features.md)"
"${build_dir}/apps/lepard-prepare" --data "${out}/synth" --surrogate --out "${out}/cache" | tee "${out}/prepare.txt"

steps="${DEMO_STEPS:-300}"
lepard_log "training the network for ${steps} steps in ${out}/train (see docs/training.md)"
rm -rf "${out}/train"
"${build_dir}/apps/lepard-train" --config configs/synthetic_horse.yaml --set "data.root=${out}/synth" \
  --set "data.cache=${out}/cache" --set "train.out=${out}/train" --set "train.steps=${steps}" \
  --set "train.validate_every=100" --set "train.checkpoint_every=100" | tee "${out}/train.txt"

lepard_log "reconstructing 16 new synthetic horses with lepard-infer in ${out}/infer"
rm -rf "${out}/new" "${out}/infer"
"${build_dir}/apps/lepard-synth" --category horse --count 16 --size 256 --seed 99 --out "${out}/new" --contact-sheet 0 >/dev/null
"${build_dir}/apps/lepard-infer" --checkpoint "${out}/train" --images "${out}/new/images/horse" --out "${out}/infer" \
  --turntable 4 | tee "${out}/infer.txt"

lepard_log "evaluating on the held-out split with lepard-eval in ${out}/eval"
"${build_dir}/apps/lepard-eval" --pseudo-labels "${out}/cache" --checkpoint "${out}/train" --name model \
  --data "${out}/synth" --split test --out "${out}/eval" \
  | tee "${out}/eval.txt"
scripts/report.py "$out" >/dev/null

report="${out}/report.txt"
{
  echo "lepard demo report ($(date -u '+%Y-%m-%d %H:%M UTC'))"
  echo
  echo "Primitive gallery: ${out}/gallery/"
  echo "  gallery.png     every primitive rendered: rows are the soft silhouette, the soft"
  echo "                  part colours (depth-aware), the hard part ids and the depth"
  echo "  assemblies.png  4 random assemblies of 8 parts: part colours and occlusion"
  echo "  $(find "${out}/gallery" -name '*.obj' | wc -l) OBJ files; open gallery.obj in any mesh viewer"
  echo
  echo "  (MeshLab, Blender, f3d) to see every primitive side by side. The first line of"
  echo "  each file holds the parameters q_s (a0..a3 size, e1 e2 squareness, t1 t2 taper,"
  echo "  b1 b2 b3 bend) and the local deformation that made it:"
  echo
  sed 's/^/  /' "${out}/gallery.txt"
  echo
  echo "Synthetic horses: ${out}/synth/ (LASSIE layout: images/, annotations/, gt/, features/, saliency/)"
  echo "  contact_sheet_horse.png  24 crops read back by the LASSIE reader, with the ground-truth"
  echo "                           part labels, mask outlines and visible keypoints overlaid"
  echo
  echo "Pseudo-labels: ${out}/cache/ (features/, saliency/, labels/ as indexed PNG)"
  echo "  pseudo_labels_horse.png  24 crops with their pseudo-label clusters (colours) and the"
  echo "                           ground-truth outline (white); the DINO surrogate is a simulation"
  sed 's/^/  /' "${out}/prepare.txt"
  echo
  echo "Training: ${out}/train/ (metrics.jsonl: loss terms per step and validations; checkpoint.pt)"
  echo "  ${steps} steps of lepard-train on the 200 horses' training split; held-out figures are"
  echo "  against the ground-truth masks (a short run: docs/BENCHMARKS.md has the 30-minute one)"
  sed 's/^/  /' "${out}/train.txt"
  echo
  echo "Inference: ${out}/infer/ (per image .obj + .mtl, .ply, .glb, _overlay.png, .json; contact_sheet.png;"
  echo "  _turntable.png for the first 4)"
  sed 's/^/  /' "${out}/infer.txt"
  echo
  echo "Evaluation (held-out split, against the generator's ground truth; docs/evaluation.md):"
  sed 's/^/  /' "${out}/eval.txt"
  echo
  echo "HTML report: ${out}/report.html (self-contained; scripts/check_report.sh renders and checks it)"
} >"$report"
lepard_log "report: ${report}"
cat "$report"
