"""More scorers of the image scale, from one fit of the image default per class: on MCAD's
adapted and DN2's frozen unit, pooled stage-7 vectors, the distance to the 5th nearest training
image (the default), the mean distance to the 5 nearest, a local-density ratio (the
5th-neighbour distance over that of the neighbours themselves), and the 5th-neighbour distance
of the vectors mean-shifted (unit(x - mean)), standardised channel by channel, or with their
first 1 or 4 principal components removed.

Usage: python image_scorers_more.py DATA OUT_CSV [CLASSES]  (the protocol of docs/benchmarks.md's
bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per class, seed 0).
"""
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "cifar10-image-scorers"))
from image_scorers import main  # noqa: E402  (the fits, the vectors and the table)

K = 5


def knn(train, test, k=K, self_excluded=False):
    d = torch.cdist(torch.from_numpy(test), torch.from_numpy(train))
    if self_excluded:
        d.fill_diagonal_(float("inf"))
    v, i = d.topk(k, dim=1, largest=False)
    return v.numpy(), i.numpy()


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def scores(train, test):
    train, test = train.astype(np.float64), test.astype(np.float64)
    out = {}
    v, i = knn(train, test)
    out["knn5"] = v[:, K - 1]
    out["mean5"] = v.mean(1)
    vt, _ = knn(train, train, self_excluded=True)
    out["ldr5"] = v[:, K - 1] / vt[i, K - 1].mean(1)
    c = train.mean(0)
    out["shifted5"] = knn(unit(train - c), unit(test - c))[0][:, K - 1]
    mu, sd = train.mean(0), train.std(0) + 1e-6
    out["zscore5"] = knn(unit((train - mu) / sd), unit((test - mu) / sd))[0][:, K - 1]
    components = np.linalg.svd(train - c, full_matrices=False)[2]  # (C, C), rows by variance
    for r in (1, 4):
        P = components[r:].T
        out[f"drop{r}pc"] = knn(unit((train - c) @ P), unit((test - c) @ P))[0][:, K - 1]
    return out


if __name__ == "__main__":
    main(*sys.argv[1:], scorers=scores)
