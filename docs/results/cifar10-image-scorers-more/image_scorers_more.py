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
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.baselines import FeatureKNN
from skmcad.benchmark.protocols import Cifar10

K = 5


def adapted_vectors(detector, X):
    with torch.no_grad():
        pooled = [detector.network_.features(batch)[-1].flatten(1).float()
                  for batch in detector._standardised_batches(X, "vectors")]
    return F.normalize(torch.cat(pooled), dim=1).numpy()


def knn(train, test, k=K, self_excluded=False):
    d = torch.cdist(torch.from_numpy(test), torch.from_numpy(train))
    if self_excluded:
        d.fill_diagonal_(float("inf"))
    v, i = d.topk(k, dim=1, largest=False)
    return v.numpy(), i.numpy()


def unit(a):
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def scores(train, test):
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
    u, s, vt_ = np.linalg.svd(train - c, full_matrices=False)
    for r in (1, 4):
        P = vt_[r:].T
        out[f"drop{r}pc"] = knn(unit((train - c) @ P), unit((test - c) @ P))[0][:, K - 1]
    return out


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9"):
    rows = []
    for task in Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(classes):
        X, y = task.X_eval, task.y_eval
        mcad = MCADDetector(random_state=0, n_jobs=2).fit(task.X_fit)
        fk = FeatureKNN(input_size=160, n_jobs=2).fit(task.X_fit)
        row = {"class": int(task.subset), "mcad": roc_auc_score(y, mcad.decision_function(X))}
        for name, vectors in (("adapted", lambda Z: adapted_vectors(mcad, Z)),
                              ("frozen", fk.features)):
            tr, te = vectors(task.X_fit).astype(np.float64), vectors(X).astype(np.float64)
            for scorer, s in scores(tr, te).items():
                row[f"{name}, {scorer}"] = roc_auc_score(y, s)
        rows.append(row)
        print({k: round(v, 4) for k, v in row.items()}, flush=True)
        pd.DataFrame(rows).to_csv(out, index=False)
    df = pd.DataFrame(rows)
    print(df.mean().round(4).to_string())


if __name__ == "__main__":
    main(*sys.argv[1:])
