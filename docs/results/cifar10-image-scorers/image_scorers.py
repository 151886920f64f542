"""Other scorers of the image scale: the pooled stage-7 vectors of MCAD's adapted backbone,
and DN2's of the frozen one, each scored by the distance to the k-th nearest training image
(k = 1, 2, 5, 10) and by the Mahalanobis distance to the training images (Ledoit-Wolf
covariance), from one fit of the image default per class.

Usage: python image_scorers.py DATA OUT_CSV [CLASSES]  (the protocol of docs/benchmarks.md's
bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per class, seed 0).
"""

import sys

import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.covariance import LedoitWolf
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.baselines import FeatureKNN
from skmcad.benchmark.protocols import Cifar10

NEIGHBOURS = (1, 2, 5, 10)


def adapted_vectors(detector, X):
    """(n, C): unit, pooled stage-7 vectors of the adapted backbone (MCAD's image scale)."""
    with torch.no_grad():
        pooled = [detector.network_.features(batch)[-1].flatten(1).float()
                  for batch in detector._standardised_batches(X, "vectors")]
    return F.normalize(torch.cat(pooled), dim=1).numpy()


def scores(train, test):
    """Each scorer's test scores from unit training and test vectors."""
    distance = torch.cdist(torch.from_numpy(test), torch.from_numpy(train))  # (n_test, n_train)
    nearest = distance.topk(max(NEIGHBOURS), dim=1, largest=False).values.numpy()
    out = {f"knn k={k}": nearest[:, k - 1] for k in NEIGHBOURS}
    out["mahalanobis"] = LedoitWolf().fit(train).mahalanobis(test)
    return out


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9", scorers=scores):
    """One row per class: MCAD's AUROC and each of ``scorers``(train, test) on both vectors."""
    rows = []
    for task in Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(classes):
        X, y = task.X_eval, task.y_eval
        mcad = MCADDetector(random_state=0, n_jobs=2).fit(task.X_fit)
        knn = FeatureKNN(input_size=160, n_jobs=2).fit(task.X_fit)
        row = {"class": int(task.subset), "mcad": roc_auc_score(y, mcad.decision_function(X))}
        for name, vectors in (("adapted", lambda Z: adapted_vectors(mcad, Z)),
                              ("frozen", knn.features)):
            for scorer, s in scorers(vectors(task.X_fit), vectors(X)).items():
                row[f"{name}, {scorer}"] = roc_auc_score(y, s)
        rows.append(row)
        print(row, flush=True)
        pd.DataFrame(rows).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
