"""Checks lepard-prepare --raw against the Python reference ViT: for each image of IMAGES,
OUT/<stem>.npy must be the key facet of the last block (h/p, w/p, 384) and
OUT/<stem>_saliency.npy the saliency, as dino_reference computes them from the same file.
Run: python3 check_raw.py FIXTURES_DIR WEIGHTS IMAGES OUT
"""
import glob
import os
import sys

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, sys.argv[1])
import dino_reference  # noqa: E402

weights, images, out = sys.argv[2:5]
model = dino_reference.build("vit_small", 8)
model.load_state_dict(torch.load(weights))
model.eval()
mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
paths = sorted(glob.glob(os.path.join(images, "*.png")))
assert paths, images
for path in paths:
    rgb = torch.from_numpy(np.array(Image.open(path).convert("RGB"))).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        key, _, sal = dino_reference.extract(model, (rgb - mean) / std)
    stem = os.path.splitext(os.path.basename(path))[0]
    ours = np.load(os.path.join(out, stem + ".npy"))
    ours_sal = np.load(os.path.join(out, stem + "_saliency.npy"))
    assert ours.shape == tuple(key.shape[1:]), (ours.shape, key.shape)
    assert ours_sal.shape == tuple(sal.shape[1:]), (ours_sal.shape, sal.shape)
    d, ds = np.abs(ours - key[0].numpy()).max(), np.abs(ours_sal - sal[0].numpy()).max()
    assert d < 1e-4 and ds < 1e-4, (path, d, ds)
print(f"{len(paths)} images agree with the Python reference")
