#!/usr/bin/env python3
"""Compares the rows of a lepard-eval per_image.csv image by image: for each row (model and
category), the mean and median of a figure, and against a base row on the same images the
mean and median difference, the share of images above the base, and the images that lose
most. Python's standard library only. Usage:
    scripts/compare_per_image.py runs/eval/per_image.csv [--base NAME] [--metric iou] [--worst 5]
--base: the row compared against (default: pseudo-labels when present, else the first row).
--metric: a column of the file (iou, precision, recall, part_iou, chamfer, fscore_5,
fscore_10, part_agreement_3d; for chamfer lower is better, and "above" counts lower values).
"""
import argparse
import csv
import statistics
import sys

LOWER_IS_BETTER = {"chamfer"}


def read_rows(path, metric):
    try:
        f = open(path, newline="")
    except OSError as e:
        sys.exit("%s: cannot be read (%s)" % (path, e.strerror))
    with f:
        reader = csv.DictReader(f)
        for column in ("model", "category", "id", metric):
            if reader.fieldnames is None or column not in reader.fieldnames:
                sys.exit("%s: no column '%s' (columns: %s)" % (path, column, ", ".join(reader.fieldnames or [])))
        rows = {}
        for line, r in enumerate(reader, 2):
            text = r[metric]
            if text == "":
                continue  # does not apply to this row (a pseudo-label row's 3D figures)
            try:
                value = float(text)
            except ValueError:
                sys.exit("%s:%d: %s '%s' is not a number" % (path, line, metric, text))
            rows.setdefault((r["model"], r["category"]), {})[r["id"]] = value
    if not rows:
        sys.exit("%s: no row has a value of %s" % (path, metric))
    return rows


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("csv")
    p.add_argument("--base", help="row compared against (default: pseudo-labels, else the first)")
    p.add_argument("--metric", default="iou")
    p.add_argument("--worst", type=int, default=5, help="images listed per row (0: none)")
    a = p.parse_args(argv)
    if a.worst < 0:
        sys.exit("--worst must be 0 or more, got %d" % a.worst)
    rows = read_rows(a.csv, a.metric)
    names = []
    for model, _ in rows:
        if model not in names:
            names.append(model)
    base = a.base if a.base is not None else ("pseudo-labels" if "pseudo-labels" in names else names[0])
    if base not in names:
        sys.exit("%s: no row named '%s' with a value of %s (rows: %s)" % (a.csv, base, a.metric, ", ".join(names)))
    sign = -1.0 if a.metric in LOWER_IS_BETTER else 1.0
    print("| row | category | images | mean %s | median | vs %s: mean diff | median diff | above |" % (a.metric, base))
    print("|---|---|---|---|---|---|---|---|")
    worst_lists = []
    for (model, category), values in rows.items():
        ref = rows.get((base, category), {})
        shared = [i for i in values if i in ref]
        line = "| %s | %s | %d | %.4f | %.4f |" % (model, category, len(values), statistics.mean(values.values()),
                                                   statistics.median(values.values()))
        if model == base or not shared:
            print(line + " - | - | - |")
            continue
        diffs = sorted(((values[i] - ref[i]) * sign, i) for i in shared)
        above = sum(d > 0 for d, _ in diffs)
        print(line + " %+.4f | %+.4f | %d of %d |" % (sign * statistics.mean(d for d, _ in diffs),
                                                     sign * statistics.median(d for d, _ in diffs), above, len(diffs)))
        if a.worst:
            worst_lists.append((model, category, [(i, values[i], ref[i]) for _, i in diffs[:a.worst]]))
    for model, category, worst in worst_lists:
        print("\n%s (%s), the images that lose most against %s (%s: row, base):" % (model, category, base, a.metric))
        for i, v, r in worst:
            print("  %s  %.4f  %.4f" % (i, v, r))


if __name__ == "__main__":
    main(sys.argv[1:])
