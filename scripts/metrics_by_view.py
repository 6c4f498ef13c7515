#!/usr/bin/env python3
"""lepard-eval's per-image scores by the true viewpoint (synthetic data only).

Reads a lepard-eval report's per_image.csv (--eval, repeatable) and each image's true camera
from <data>/gt/<category>/params_<id>.json (lepard-synth), and prints, for every model in the
reports, the mean of each score over the images seen end-on (|cos azimuth| > 0.7: from the
front or the back), side-on (|cos azimuth| < 0.7) and all. On lepard-synth's animals an
azimuth of 0 or 180 degrees looks along the body. The 3D scores (Chamfer, F-scores) are where
the views differ: a body seen end-on shows nothing of its length.

  scripts/metrics_by_view.py --eval runs/eval --data runs/h1200 [--eval runs/eval2 ...]
                             [--scores iou,part_iou,chamfer] [--threshold 0.7]
"""
import argparse
import csv
import json
import math
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--eval", action="append", required=True, help="a lepard-eval --out folder (repeatable)")
    ap.add_argument("--data", required=True, help="the lepard-synth folder the images came from")
    ap.add_argument("--scores", default="iou,part_iou,chamfer,fscore_5",
                    help="comma-separated per_image.csv columns (default iou,part_iou,chamfer,fscore_5)")
    ap.add_argument("--threshold", type=float, default=0.7, help="|cos azimuth| above this is end-on (default 0.7)")
    a = ap.parse_args()
    if not 0 < a.threshold < 1:
        sys.exit("metrics_by_view.py: --threshold %g: give a value in (0, 1)" % a.threshold)
    scores = [s for s in a.scores.split(",") if s]
    azimuth = {}
    rows = []
    for folder in a.eval:
        path = os.path.join(folder, "per_image.csv")
        if not os.path.isfile(path):
            sys.exit("metrics_by_view.py: --eval %s: no per_image.csv there (a lepard-eval --out folder?)" % folder)
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = [s for s in scores if s not in (reader.fieldnames or [])]
            if missing:
                sys.exit("metrics_by_view.py: %s has no column %s (it has %s)" %
                         (path, ", ".join(missing), ", ".join(reader.fieldnames or [])))
            rows.extend(reader)
    order = []
    sums = {}
    seen = set()
    for r in rows:
        if (r["model"], r["id"]) in seen:  # the pseudo-labels' rows are in every report
            continue
        seen.add((r["model"], r["id"]))
        category, _, index = r["id"].partition("/")
        key = (category, index)
        if key not in azimuth:
            params = os.path.join(a.data, "gt", category, "params_%s.json" % index)
            try:
                with open(params) as f:
                    azimuth[key] = float(json.load(f)["camera"]["azimuth_deg"])
            except (OSError, KeyError, ValueError) as e:
                sys.exit("metrics_by_view.py: %s: %s (is --data the lepard-synth folder of these images?)" % (params, e))
        view = "end-on" if abs(math.cos(math.radians(azimuth[key]))) > a.threshold else "side-on"
        model = r["model"]
        if model not in sums:
            order.append(model)
            sums[model] = {}
        for v in (view, "all"):
            for s in scores:
                if r.get(s, "") == "":
                    continue
                total, n = sums[model].get((v, s), (0.0, 0))
                sums[model][(v, s)] = (total + float(r[s]), n + 1)
    print("| model | view | images | " + " | ".join(scores) + " |")
    print("|---|---|---|" + "---|" * len(scores))
    for model in order:
        for v in ("end-on", "side-on", "all"):
            counts = [sums[model].get((v, s), (0.0, 0)) for s in scores]
            n = max(c[1] for c in counts)
            if n == 0:
                continue
            cells = ["%.4f" % (t / k) if k else "-" for t, k in counts]
            print("| %s | %s | %d | %s |" % (model, v, n, " | ".join(cells)))


if __name__ == "__main__":
    main()
