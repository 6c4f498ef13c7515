"""Writes palette and greyscale PNGs with other tools, for the indexed PNG reader.

OUT/pil_palette.png  PIL (mode "P", a 5-colour palette), OUT/pil_palette.npy its indices
OUT/filters.png      an 8-bit greyscale PNG written by hand with zlib, whose rows use all
                     five PNG filters (none, sub, up, average, Paeth); OUT/filters.npy
Also checks, with PIL, a palette PNG written by lepard (OUT/ours.png, OUT/ours.npy) if present.
Run: python3 fixtures_png.py OUT
"""
import os
import struct
import sys
import zlib

import numpy as np
from PIL import Image


def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def filtered_png(img):
    h, w = img.shape
    raw = b""
    for y in range(h):
        f = y % 5
        row = bytearray([f])
        for x in range(w):
            a = int(img[y, x - 1]) if x > 0 else 0
            b = int(img[y - 1, x]) if y > 0 else 0
            c = int(img[y - 1, x - 1]) if x > 0 and y > 0 else 0
            pred = [0, a, b, (a + b) // 2, paeth(a, b, c)][f]
            row.append((int(img[y, x]) - pred) & 0xff)
        raw += bytes(row)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")


def main(out):
    ours = os.path.join(out, "ours.png")
    if os.path.exists(ours):
        im = Image.open(ours)
        assert im.mode == "P", im.mode
        assert (np.array(im) == np.load(os.path.join(out, "ours.npy"))).all()
        assert im.getpalette()[:9] == [0, 0, 0, 230, 25, 75, 60, 180, 75], im.getpalette()[:9]
        return
    rng = np.random.default_rng(3)
    idx = rng.integers(0, 5, size=(13, 17)).astype(np.uint8)
    im = Image.fromarray(idx, mode="P")
    im.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 0])
    im.save(os.path.join(out, "pil_palette.png"))
    np.save(os.path.join(out, "pil_palette.npy"), idx)
    grey = (np.add.outer(np.arange(11) * 23, np.arange(19) * 7) % 256).astype(np.uint8)
    grey[3:6, 4:9] = rng.integers(0, 256, size=(3, 5))
    with open(os.path.join(out, "filters.png"), "wb") as f:
        f.write(filtered_png(grey))
    np.save(os.path.join(out, "filters.npy"), grey)


if __name__ == "__main__":
    main(sys.argv[1])
