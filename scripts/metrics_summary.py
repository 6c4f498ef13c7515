#!/usr/bin/env python3
"""Summarises a lepard-train metrics.jsonl: the loss curve in ten slices of the run (mean
of each term per slice), the validations, and the throughput. Usage:
    scripts/metrics_summary.py runs/h1200_train/metrics.jsonl [--markdown]
"""
import json
import sys


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    path, markdown = sys.argv[1], "--markdown" in sys.argv[2:]
    steps, vals = [], []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                sys.exit("%s:%d: not JSON (%s)" % (path, n, e))
            (vals if "val_silhouette_iou" in row else steps).append(row)
    if not steps:
        sys.exit("%s: no training steps" % path)
    terms = [k for k in steps[0] if k not in ("step", "lr", "sigma", "grad_norm", "images_per_s")]
    slices = 10 if len(steps) >= 10 else len(steps)
    size = len(steps) / slices
    header = ["steps"] + terms
    rows = []
    for i in range(slices):
        part = steps[int(i * size):int((i + 1) * size)]
        row = ["%d-%d" % (part[0]["step"], part[-1]["step"])]
        row += ["%.4f" % (sum(r[t] for r in part) / len(part)) for t in terms]
        rows.append(row)
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for r in rows:
            print("| " + " | ".join(r) + " |")
    else:
        print("  ".join("%-12s" % h for h in header))
        for r in rows:
            print("  ".join("%-12s" % c for c in r))
    ips = sorted(r["images_per_s"] for r in steps)
    print("\nmedian images/s over the logged windows: %.1f" % ips[len(ips) // 2])
    if vals:
        print("\nvalidation (held-out):")
        for v in vals:
            print("  step %6d  silhouette IoU %.4f  part IoU %.4f  (%d images, %s)" % (
                v["step"], v["val_silhouette_iou"], v["val_part_iou"], v["val_images"], v["val_reference"]))


if __name__ == "__main__":
    main()
