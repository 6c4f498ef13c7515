#!/usr/bin/env bash
# Renders the demo's HTML report in headless Chromium (Debian's `chromium`, installed if
# missing), takes a screenshot, and checks that every section of the report is filled and
# that the screenshot shows something. Usage: scripts/check_report.sh [runs/demo/report.html]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/common.sh
report="${1:-runs/demo/report.html}"
[ -f "$report" ] || { echo "check_report: no ${report} (run scripts/demo.sh first)" >&2; exit 1; }
ensure_packages chromium python3-pil
shot="${report%.html}.png"
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,5200 \
  --screenshot="$(realpath -m "$shot")" "file://$(realpath "$report")" >/dev/null 2>&1
python=$(lepard_python PIL)
[ -n "$python" ] || { echo "check_report.sh: no python3 with PIL (apt-get install python3-pil)" >&2; exit 1; }
"$python" - "$report" "$shot" <<'PY'
import re, sys
from PIL import Image, ImageStat
report, shot = sys.argv[1], sys.argv[2]
page = open(report).read()
sections = re.findall(r'data-section="([^"]+)" data-filled="([^"]+)"', page)
expected = {"metrics", "loss", "overlays", "pseudo", "turntables", "data"}
missing = expected - {s for s, _ in sections}
empty = [s for s, f in sections if f != "yes"]
if missing or empty:
    sys.exit("check_report: sections missing %s, empty %s" % (sorted(missing), empty))
for needle in ("Chamfer", "F@5%", "3D parts", "occluded", "pseudo-labels"):
    if needle not in page:
        sys.exit("check_report: the evaluation table lacks '%s' (lepard-eval's new columns and rows)" % needle)
im = Image.open(shot).convert("L")
stat = ImageStat.Stat(im)
if stat.stddev[0] < 10:
    sys.exit("check_report: the screenshot %s looks blank (stddev %.1f)" % (shot, stat.stddev[0]))
print("check_report: %d sections filled; screenshot %s (%dx%d)" % (len(sections), shot, im.width, im.height))
PY
# The demo's glTF files against the Khronos glTF-Validator (0 errors and 0 warnings), when
# node and npm can provide it (skipped, saying so, otherwise).
glbs=("$(dirname "$report")"/infer/*.glb)
validator_dir="${BUILD_DIR:-build}/tools"
ensure_gltf_validator "$validator_dir"
if [ -f "$validator_dir/node_modules/gltf-validator/package.json" ] && [ -f "${glbs[0]}" ]; then
  NODE_PATH="$validator_dir/node_modules" node scripts/validate_gltf.js "${glbs[@]}" >"${report%.html}_gltf.txt" ||
    { cat "${report%.html}_gltf.txt"; echo "check_report: the demo's .glb files fail the glTF-Validator" >&2; exit 1; }
  echo "check_report: ${#glbs[@]} .glb files pass the Khronos glTF-Validator (0 errors, 0 warnings)"
else
  echo "check_report: glTF-Validator not available (node/npm): the .glb check was skipped"
fi
