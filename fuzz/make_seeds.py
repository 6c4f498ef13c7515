"""Seed corpora of the fuzz harnesses, written by the real tools (torch.save, numpy, PIL,
scipy.io.savemat): python3 make_seeds.py OUT -> OUT/<target>/<seed files>."""
import collections
import io
import json
import os
import struct
import sys

import numpy as np
import scipy.io as sio
import torch
from PIL import Image


def put(out, target, name, data):
    os.makedirs(os.path.join(out, target), exist_ok=True)
    with open(os.path.join(out, target, name), "wb") as f:
        f.write(data)


def torch_bytes(obj):
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


def main(out):
    torch.manual_seed(0)
    # torch.save: a state dict of parameters, views and dtypes, a nested training checkpoint.
    sd = collections.OrderedDict(
        [("w", torch.nn.Parameter(torch.randn(3, 4))), ("b", torch.arange(5, dtype=torch.int64))])
    put(out, "torch_checkpoint", "state_dict.pth", torch_bytes(sd))
    base = torch.randn(4, 6, dtype=torch.float64)
    put(out, "torch_checkpoint", "views.pth", torch_bytes(
        {"t": base.t(), "slice": base[1:3], "half": torch.ones(3, dtype=torch.float16), "u8": torch.arange(4, dtype=torch.uint8),
         "flag": torch.tensor([True, False])}))
    put(out, "torch_checkpoint", "nested.pth", torch_bytes(
        {"teacher": {"backbone.pos_embed": torch.randn(1, 2, 3)}, "epoch": 3, "args": "namespace"}))
    # safetensors: header length, JSON header, data.
    def safetensors(tensors):
        header, blob = {}, b""
        for name, arr in tensors.items():
            dtype = {np.float32: "F32", np.int64: "I64", np.float16: "F16", np.uint8: "U8"}[arr.dtype.type]
            header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [len(blob), len(blob) + arr.nbytes]}
            blob += arr.tobytes()
        header["__metadata__"] = {"format": "pt"}
        h = json.dumps(header).encode()
        return struct.pack("<Q", len(h)) + h + blob
    put(out, "safetensors", "a.safetensors", safetensors(
        {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "i": np.arange(3, dtype=np.int64),
         "h": np.ones(2, dtype=np.float16), "u": np.arange(5, dtype=np.uint8)}))
    # .npy: dtypes, orders, shapes.
    for name, arr in [("f32", np.arange(12, dtype=np.float32).reshape(3, 4)), ("f64", np.eye(3)),
                      ("fortran", np.asfortranarray(np.arange(6, dtype=np.float32).reshape(2, 3))),
                      ("u8", np.arange(10, dtype=np.uint8)), ("i64_3d", np.arange(24, dtype=np.int64).reshape(2, 3, 4)),
                      ("scalar", np.array(3.5, dtype=np.float32)), ("big_endian", np.arange(4, dtype=">f4"))]:
        b = io.BytesIO()
        np.save(b, arr)
        put(out, "npy", name + ".npy", b.getvalue())
    # Indexed PNGs (the pseudo-label and part-map files).
    labels = (np.arange(16 * 12).reshape(16, 12) % 9).astype(np.uint8)
    for name, colors in [("labels", 9), ("two", 2)]:
        im = Image.fromarray(labels % colors, "P")
        im.putpalette(sum(([i * 20, 255 - i * 20, i * 7] for i in range(colors)), []))
        b = io.BytesIO()
        im.save(b, "PNG")
        put(out, "indexed_png", name + ".png", b.getvalue())
    b = io.BytesIO()
    Image.fromarray(labels, "L").save(b, "PNG")
    put(out, "indexed_png", "grey.png", b.getvalue())
    # LASSIE annotation CSVs with Label-Studio keypoints (images 0-2 exist in the harness).
    def kp(label, x, y):
        return {"x": x, "y": y, "width": 0.5, "keypointlabels": [label], "original_width": 32}
    kps = json.dumps([kp("Left eye", 10, 20), kp("Front right upper leg (knee)", 50, 80), kp("Tail top", 90, 50)])
    rows = ["id,img_url,kps", '0,https://example.org/a.jpg,"' + kps.replace('"', '""') + '"',
            "1,https://example.org/b.jpg,", '2,u,"[]"']
    put(out, "lassie_csv", "annotations.csv", ("\r\n".join(rows) + "\r\n").encode())
    put(out, "lassie_csv", "no_kps.csv", b"id,img_url\n0,x\n1,y\n")
    # Pascal-Part .mat (anno.objects(i) with class, mask, parts(j).part_name/mask).
    h, w = 24, 32
    def rect(r0, r1, c0, c1):
        m = np.zeros((h, w), dtype=np.uint8)
        m[r0:r1, c0:c1] = 1
        return m
    parts = np.zeros((1, 3), dtype=[("part_name", "O"), ("mask", "O")])
    for j, (n, m) in enumerate([("head", rect(2, 8, 2, 9)), ("torso", rect(8, 16, 8, 26)), ("lfuleg", rect(16, 22, 9, 12))]):
        parts[0, j]["part_name"] = n
        parts[0, j]["mask"] = m
    objects = np.zeros((1, 1), dtype=[("class", "O"), ("class_ind", "O"), ("mask", "O"), ("parts", "O")])
    objects[0, 0]["class"] = "horse"
    objects[0, 0]["class_ind"] = np.array([[13.0]])
    objects[0, 0]["mask"] = rect(2, 22, 2, 26)
    objects[0, 0]["parts"] = parts
    anno = np.zeros((1, 1), dtype=[("imname", "O"), ("objects", "O")])
    anno[0, 0]["imname"] = "2008_000001"
    anno[0, 0]["objects"] = objects
    for name, compress in [("plain", False), ("compressed", True)]:
        b = io.BytesIO()
        sio.savemat(b, {"anno": anno}, do_compression=compress)
        put(out, "pascal_mat", name + ".mat", b.getvalue())
    # Training configurations.
    put(out, "config", "good.yaml", b"data:\n  root: /tmp\n  category: horse\nmodel:\n  parts: 4\n"
        b"loss:\n  ownership: true\n  part_silhouette: 0.2\ntrain:\n  steps: 10\n  lr: 1.0e-3\n  schedule: cosine\n")
    put(out, "config", "lists.yaml", b"data: {root: /tmp, crop_size: 64}\ntrain: {steps: 3, flip: false}\n")
    # lepard-infer boxes.
    put(out, "boxes_csv", "boxes.csv", b"file,left,top,width,height\na.png,1,2,30,40\nb.jpg,0.5,0,10.25,8\r\n")


if __name__ == "__main__":
    main(sys.argv[1])
