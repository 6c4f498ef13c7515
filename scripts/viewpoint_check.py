#!/usr/bin/env python3
"""Does the predicted camera follow the true viewpoint? (synthetic data only)

Reads the <name>.json files that `lepard-infer --formats json` writes for the images
input_<i>.png of a lepard-synth folder, and the true camera of each from
<data>/gt/<category>/params_<i>.json. Prints, over the images:
  - the spread of the predicted camera's yaw (its turn about the object's vertical axis),
    as the circular standard deviation in degrees (a camera that ignores the viewpoint: a
    few degrees; true azimuths are uniform over 360 degrees: about 100 or more);
  - for each sense of turning, the mean resultant length of (predicted yaw - true azimuth):
    1 when they differ by a constant, about 0 when unrelated (1/sqrt(n) by chance).

  scripts/viewpoint_check.py --predictions runs/infer --data runs/h1200 [--category horse]
"""
import argparse
import cmath
import glob
import json
import math
import os
import sys


def rotation(q):
    w, x, y, z = q
    n = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / n, x / n, y / n, z / n
    return [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]]


def resultant(angles):
    return abs(sum(cmath.exp(1j * a) for a in angles) / len(angles))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--predictions", required=True, help="lepard-infer output folder with <name>.json")
    ap.add_argument("--data", required=True, help="lepard-synth folder (with gt/<category>/params_<i>.json)")
    ap.add_argument("--category", default="horse")
    a = ap.parse_args()
    pred, true = [], []
    for f in sorted(glob.glob(os.path.join(a.predictions, "*.json"))):
        name = os.path.basename(f)[:-5]
        with open(f) as fh:
            d = json.load(fh)
        if "camera" not in d:
            continue
        params = os.path.join(a.data, "gt", a.category, "params_" + name.split("_")[-1] + ".json")
        if not os.path.exists(params):
            sys.exit(f"viewpoint_check: {params}: no true camera for prediction {f}")
        with open(params) as fh:
            true.append(math.radians(json.load(fh)["camera"]["azimuth_deg"]))
        r = rotation(d["camera"]["rotation_wxyz"])
        pred.append(math.atan2(r[2][0], r[0][0]))
    if not pred:
        sys.exit(f"viewpoint_check: no <name>.json with a camera in {a.predictions}")
    spread = math.degrees(math.sqrt(-2 * math.log(max(resultant(pred), 1e-12))))
    print(f"images {len(pred)}; predicted yaw: circular standard deviation {spread:.1f} deg")
    for sense in (1, -1):
        r = resultant([sense * p - t for p, t in zip(pred, true)])
        print(f"sense {sense:+d}: mean resultant length of (yaw - true azimuth) {r:.3f} "
              f"(chance about {1 / math.sqrt(len(pred)):.3f})")


if __name__ == "__main__":
    main()
