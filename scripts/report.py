#!/usr/bin/env python3
"""Builds the demo's self-contained HTML report (images embedded) from a demo run folder:

    scripts/report.py runs/demo            -> runs/demo/report.html

Sections, each marked data-section="..." and data-filled="yes" or "no" (the check script
scripts/check_report.sh relies on these): metrics (lepard-eval's table), loss (the training
loss curve and held-out IoU, drawn as SVG from metrics.jsonl), overlays (predicted parts on
held-out crops), pseudo (pseudo-labels), turntables (a few reconstructions turning), data
(the synthetic set's contact sheet and the primitive gallery). Standard library only.
"""
import base64
import glob
import html
import json
import os
import sys


def img(path, alt, width=None):
    if not os.path.exists(path):
        return ""
    with open(path, "rb") as f:
        data = base64.b64encode(f.read()).decode("ascii")
    style = ' style="max-width:100%%;width:%s"' % width if width else ' style="max-width:100%"'
    return '<img alt="%s" src="data:image/png;base64,%s"%s>' % (html.escape(alt), data, style)


def loss_svg(path):
    if not os.path.exists(path):
        return ""
    steps, vals = [], []
    for line in open(path):
        row = json.loads(line)
        (vals if "val_silhouette_iou" in row else steps).append(row)
    if len(steps) < 2:
        return ""
    w, h, pad = 760, 300, 45
    xs = [r["step"] for r in steps]
    ys = [r["loss"] for r in steps]
    x0, x1, y1 = min(xs), max(xs), max(ys) * 1.05

    def px(x):
        return pad + (x - x0) / max(x1 - x0, 1) * (w - 2 * pad)

    def py(y, top=y1):
        return h - pad - y / top * (h - 2 * pad)

    loss = " ".join("%.1f,%.1f" % (px(x), py(y)) for x, y in zip(xs, ys))
    iou = " ".join("%.1f,%.1f" % (px(v["step"]), py(v["val_silhouette_iou"], 1.0)) for v in vals)
    parts = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" style="background:#fff">' % (w, h),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (pad, h - pad, w - pad, h - pad),
             '<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#444"/>' % (pad, pad, pad, h - pad),
             '<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>' % loss,
             '<text x="%d" y="%d" font-size="12">step %d</text>' % (w - pad - 60, h - pad + 30, x1),
             '<text x="%d" y="%d" font-size="12">%.3f</text>' % (2, pad + 4, y1),
             '<text x="%d" y="%d" font-size="12" fill="#1f77b4">training loss</text>' % (pad + 10, pad - 10)]
    if vals:
        parts.append('<polyline fill="none" stroke="#d62728" stroke-width="2" points="%s"/>' % iou)
        for v in vals:
            parts.append('<circle cx="%.1f" cy="%.1f" r="3" fill="#d62728"/>' % (px(v["step"]), py(v["val_silhouette_iou"], 1.0)))
        parts.append('<text x="%d" y="%d" font-size="12" fill="#d62728">held-out silhouette IoU (0 to 1): last %.3f</text>'
                     % (pad + 160, pad - 10, vals[-1]["val_silhouette_iou"]))
    parts.append("</svg>")
    return "".join(parts)


def metrics_table(path):
    if not os.path.exists(path):
        return ""
    m = json.load(open(path))
    columns = [("pck_0.05", "PCK@0.05"), ("pck_0.1", "PCK@0.1"), ("iou", "IoU"), ("part_iou", "part IoU"),
               ("pcp", "PCP"), ("pcp_occluded", "occluded"), ("chamfer", "Chamfer"), ("fscore_5", "F@5%"),
               ("fscore_10", "F@10%"), ("part_agreement_3d", "3D parts")]
    rows = []
    for r in m.get("rows", []):
        cells = "".join("<td>%s</td>" % ("%.4f" % r[k] if k == "chamfer" else "%.3f" % r[k]) if k in r else "<td>-</td>"
                        for k, _ in columns)
        rows.append("<tr><td>%s</td><td>%s</td><td>%s</td>%s</tr>" % (
            html.escape(str(r.get("model", ""))), html.escape(str(r.get("category", ""))), r.get("images", ""), cells))
    if not rows:
        return ""
    head = "".join("<th>%s</th>" % html.escape(t) for _, t in columns)
    return "<table><tr><th>model</th><th>category</th><th>images</th>%s</tr>%s</table>" % (head, "".join(rows))


def ownership(run):
    path = os.path.join(run, "train", "ownership.txt")
    if not os.path.exists(path):
        return ""
    return "<h3>Part-to-cluster ownership</h3><pre>%s</pre>" % html.escape(open(path).read())


def section(key, title, body, note=""):
    filled = "yes" if body.strip() else "no"
    text = body if body.strip() else "<p><em>missing: this part of the demo did not run</em></p>"
    return '<section data-section="%s" data-filled="%s"><h2>%s</h2>%s%s</section>' % (
        key, filled, html.escape(title), "<p>%s</p>" % note if note else "", text)


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    run = sys.argv[1]
    turntables = sorted(glob.glob(os.path.join(run, "infer", "*_turntable.png")))[:4]
    summary = os.path.join(run, "train", "summary.json")
    train_note = ""
    if os.path.exists(summary):
        s = json.load(open(summary))
        train_note = "%d steps in %.0f s (%.1f images/s, peak memory %.0f MB)." % (
            s["steps"], s["seconds"], s["images_per_s"], s["peak_rss_mb"])
    body = [
        section("metrics", "Evaluation on held-out synthetic horses", metrics_table(os.path.join(run, "eval", "metrics.json")),
                "lepard-eval: keypoint transfer PCK at 0.05 and 0.1 of the crop side, overall and part IoU, part "
                "transfer PCP among the transfers visible in the target (occluded share beside it), and 3D accuracy "
                "against the generator's meshes (Chamfer in units of the mesh's diagonal, F-score at 5% and 10%, 3D "
                "part agreement); the pseudo-labels' own row first (docs/evaluation.md)."),
        section("loss", "Training", loss_svg(os.path.join(run, "train", "metrics.jsonl")), train_note),
        section("overlays", "Reconstructions of held-out images",
                img(os.path.join(run, "eval", "overlays_horse.png"), "overlays"),
                "Predicted parts (colours) over the crops, ground-truth outline in white."),
        section("pseudo", "Pseudo-labels (the training signal) and which part owns which cluster",
                img(os.path.join(run, "cache", "pseudo_labels_horse.png"), "pseudo-labels") + ownership(run),
                "Co-segmentation clusters of the DINO surrogate (a simulation of DINO features); below them the "
                "part-to-cluster ownership the per-part forces act on (train/ownership.h), when the run has one."),
        section("turntables", "Reconstructions turning", "".join(
                    '<div>%s<br>%s</div>' % (html.escape(os.path.basename(t)), img(t, "turntable")) for t in turntables),
                "lepard-infer --turntable: eight views about the image's vertical axis."),
        section("data", "Synthetic data and primitives",
                img(os.path.join(run, "synth", "contact_sheet_horse.png"), "synthetic horses") +
                img(os.path.join(run, "gallery", "gallery.png"), "primitive gallery")),
    ]
    page = ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>lepard demo report</title><style>"
            "body{font-family:sans-serif;margin:2em;max-width:1400px}table{border-collapse:collapse}"
            "td,th{border:1px solid #999;padding:4px 10px;text-align:right}section{margin-bottom:2em}"
            "</style></head><body><h1>lepard demo report</h1>%s</body></html>" % "".join(body))
    out = os.path.join(run, "report.html")
    with open(out, "w") as f:
        f.write(page)
    print(out)


if __name__ == "__main__":
    main()
