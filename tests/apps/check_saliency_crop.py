"""Checks lepard-infer --crop saliency against an independent computation.

For every <stem>.json lepard-infer wrote, reads the CLS saliency lepard-prepare --raw wrote
for the same image with the same weights (<stem>_saliency.npy, the image at its own size),
takes the largest 4-connected region of tokens >= THRESHOLD (scipy.ndimage.label), its box
in pixels (token j covers [j * patch, (j + 1) * patch)) and LASSIE's crop around it
(utils/data_utils.py process_bbox: a square of int(1.5 max(w, h)) centred on the box), and
compares it with the crop in the JSON. Run: python3 check_saliency_crop.py INFER_OUT RAW_OUT
PATCH THRESHOLD
"""
import glob
import json
import os
import sys

import numpy as np
from scipy import ndimage


def main(infer_out, raw_out, patch, threshold):
    files = sorted(glob.glob(os.path.join(infer_out, "*.json")))
    files = [f for f in files if not f.endswith("summary.json")]
    if not files:
        sys.exit("no JSON files in " + infer_out)
    for f in files:
        with open(f) as fh:
            j = json.load(fh)
        stem = os.path.splitext(os.path.basename(f))[0]
        sal = np.load(os.path.join(raw_out, stem + "_saliency.npy")).astype(np.float64)
        labels, n = ndimage.label(sal >= threshold)  # 4-connectivity by default
        if n == 0:
            sys.exit(f"{stem}: no salient token; the test expects one")
        sizes = ndimage.sum(np.ones_like(sal), labels, range(1, n + 1))
        sums = ndimage.sum(sal, labels, range(1, n + 1))
        best = max(range(n), key=lambda i: (sizes[i], sums[i])) + 1
        rows, cols = np.nonzero(labels == best)
        left, top = cols.min() * patch, rows.min() * patch
        width, height = (cols.max() + 1) * patch - left, (rows.max() + 1) * patch - top
        size = int(max(width, height) * 1.5)
        cx, cy = left + width / 2, top + height / 2
        expected = {"left": int(cx - size / 2), "top": int(cy - size / 2), "size": size, "source": "saliency"}
        if j["crop"] != expected:
            sys.exit(f"{stem}: lepard-infer's crop {j['crop']} differs from {expected}")
        print(f"{stem}: crop {expected} from {len(rows)} salient tokens")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
