"""Which scales carry MCAD's CIFAR-10 score: each scale's pooled deviation alone, and other
weightings of them, from one fit of the image default per class.

Usage: python scales.py DATA OUT_CSV [CLASSES]  (the protocol of docs/benchmarks.md's
bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per class, seed 0).
"""

import sys

import numpy as np
import pandas as pd
import torch
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.benchmark.protocols import Cifar10


def pooled_scales(detector, X):
    """(n, S): each scale's standardised, pooled deviation, as the default scorer reads it."""
    network, scorer = detector.network_, detector.scorer_
    with torch.no_grad():
        return torch.cat([scorer.pooled(network.deviation_maps(batch))
                          for batch in detector._standardised_batches(X, "scoring")]).numpy()


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9"):
    rows = []
    for task in Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(classes):
        detector = MCADDetector(random_state=0, n_jobs=2).fit(task.X_fit)
        y, pooled = task.y_eval, pooled_scales(detector, task.X_eval)
        weights = detector.scorer_.scale_weights.numpy()
        row = {"class": int(task.subset),
               "mcad": roc_auc_score(y, detector.decision_function(task.X_eval))}
        for s, kind in enumerate(detector.network_.scale_kinds):
            name = f"stage {detector.network_.encoder.stages[s]}" if kind == "learned" else kind
            row[f"{name} alone"] = roc_auc_score(y, pooled[:, s])
            row[f"{name} weight"] = weights[s]
        for factor in (2, 4):
            boosted = weights * np.r_[np.ones(len(weights) - 1), factor]
            row[f"image weight x{factor}"] = roc_auc_score(y, pooled @ boosted)
        row["without the first scale"] = roc_auc_score(y, pooled[:, 1:] @ weights[1:])
        rows.append(row)
        print(row, flush=True)
    pd.DataFrame(rows).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
