"""Two fits of MCAD's image default with different seeds (different adaptation batches,
views and banks), their scores each standardised by the mean and standard deviation of its
own training scores and summed: how much would an ensemble of two adapted backbones add?

Usage: python seed_ensemble.py DATA OUT_CSV [CLASSES]  (the protocol of docs/benchmarks.md's
bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per class, seed 0 of the split).
"""

import sys

import pandas as pd
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.benchmark.protocols import Cifar10

SEEDS = (0, 1)


def standardised(detector, scores):
    train = detector.decision_scores_
    return (scores - train.mean()) / train.std()


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9"):
    rows = []
    for task in Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(classes):
        X, y = task.X_eval, task.y_eval
        row, total = {"class": int(task.subset)}, 0.0
        for seed in SEEDS:
            detector = MCADDetector(random_state=seed, n_jobs=2).fit(task.X_fit)
            scores = detector.decision_function(X)
            row[f"mcad, seed {seed}"] = roc_auc_score(y, scores)
            total = total + standardised(detector, scores)
        row["mcad, both seeds"] = roc_auc_score(y, total)
        rows.append(row)
        print(row, flush=True)
        pd.DataFrame(rows).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
