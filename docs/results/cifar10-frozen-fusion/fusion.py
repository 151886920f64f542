"""MCAD's score fused with DN2's on the frozen backbone: each detector's test scores
standardised by the mean and standard deviation of its own training scores (each training
image scored as if not in the bank), then summed with weight w on DN2's.

Usage: python fusion.py DATA OUT_DIR [CLASSES [MAX_TRAIN MAX_TEST]]  (by default the protocol
of docs/benchmarks.md's bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per
class, seed 0). OUT_DIR gets results.csv and each class's scores (scores-CLASS.npz).
"""

import os
import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.baselines import FeatureKNN
from skmcad.benchmark.protocols import Cifar10

WEIGHTS = (0.25, 0.5, 1.0)


def standardised(detector, scores):
    train = detector.decision_scores_
    return (scores - train.mean()) / train.std()


def main(data_dir, out_dir, classes="0,1,2,3,4,5,6,7,8,9", max_train=1000, max_test=2000):
    os.makedirs(out_dir, exist_ok=True)
    rows = []
    protocol = Cifar10(data_dir, max_train=int(max_train), max_test=int(max_test))
    for task in protocol.load_tasks(classes):
        X, y = task.X_eval, task.y_eval
        mcad = MCADDetector(random_state=0, n_jobs=2).fit(task.X_fit)
        knn = FeatureKNN(input_size=160, n_jobs=2).fit(task.X_fit)
        s_mcad, s_knn = mcad.decision_function(X), knn.decision_function(X)
        np.savez(os.path.join(out_dir, f"scores-{task.subset}.npz"), y=y, mcad=s_mcad,
                 knn=s_knn, mcad_train=mcad.decision_scores_, knn_train=knn.decision_scores_)
        z_mcad, z_knn = standardised(mcad, s_mcad), standardised(knn, s_knn)
        row = {"class": int(task.subset), "mcad": roc_auc_score(y, s_mcad),
               "knn-features": roc_auc_score(y, s_knn),
               **{f"mcad + {w} knn-features": roc_auc_score(y, z_mcad + w * z_knn)
                  for w in WEIGHTS}}
        rows.append(row)
        print(row, flush=True)
        pd.DataFrame(rows).to_csv(os.path.join(out_dir, "results.csv"), index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
