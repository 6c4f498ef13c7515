"""The Python side of the ViT benchmark: the reference ViT (tests/features/fixtures/
dino_reference.py, written like DINO's own code) run by Debian's PyTorch, timing what
feature extraction runs: a forward pass returning the last block's key facet and the
CLS-attention saliency.

  python3 bench/python/bench_vit.py --write-weights FILE        (random ViT-S/8 weights)
  python3 bench/python/bench_vit.py --weights FILE --size 224 --repeats 5 --threads 2

Prints one line: python size=224 stride=8 median_ms=... min_ms=... peak_rss_mb=...
"""
import argparse
import os
import resource
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "tests", "features", "fixtures"))
import dino_reference  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--write-weights")
    ap.add_argument("--weights")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--stride", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    model = dino_reference.build("vit_small", 8)
    if a.write_weights:
        dino_reference.randomize(model, torch.Generator().manual_seed(1))
        torch.save(model.state_dict(), a.write_weights)
        return
    model.load_state_dict(torch.load(a.weights))
    model.eval()
    image = torch.randn(1, 3, a.size, a.size, generator=torch.Generator().manual_seed(2))
    times = []
    with torch.no_grad():
        dino_reference.extract(model, image, a.stride)  # warm-up
        for _ in range(a.repeats):
            start = time.perf_counter()
            dino_reference.extract(model, image, a.stride)
            times.append(1000 * (time.perf_counter() - start))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"python size={a.size} stride={a.stride} median_ms={statistics.median(times):.1f} "
          f"min_ms={min(times):.1f} peak_rss_mb={rss:.0f}")


if __name__ == "__main__":
    main()
