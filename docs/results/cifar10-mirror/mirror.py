"""Test-time mirroring: each test image scored as itself and as its mirror image, the two
scores averaged, for MCAD's image default and for DN2 on the same backbone (and DN2 with the
mirror images of the training images added to its bank).

Usage: python mirror.py DATA OUT_CSV [CLASSES [MAX_TRAIN MAX_TEST]]  (by default the protocol
of docs/benchmarks.md's bfloat16 CIFAR-10 run: 1,000 training and 2,000 test images per
class, seed 0).
"""

import sys

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.baselines import FeatureKNN
from skmcad.benchmark.protocols import Cifar10


def mirrored(images):
    """Images mirrored left to right, channels last (n, h, w, c) or first (n, c, h, w)."""
    return np.ascontiguousarray(np.flip(images, axis=2 if images.shape[-1] in (1, 3) else 3))


def aurocs(y, detector, X, name):
    """AUROC of the plain scores, of the mirror images' and of the mean of the two."""
    plain, flipped = detector.decision_function(X), detector.decision_function(mirrored(X))
    return {name: roc_auc_score(y, plain), f"{name}, mirror only": roc_auc_score(y, flipped),
            f"{name}, mean with mirror": roc_auc_score(y, (plain + flipped) / 2)}


def main(data_dir, out, classes="0,1,2,3,4,5,6,7,8,9", max_train=1000, max_test=2000):
    rows = []
    protocol = Cifar10(data_dir, max_train=int(max_train), max_test=int(max_test))
    for task in protocol.load_tasks(classes):
        X, y = task.X_eval, task.y_eval
        mcad = MCADDetector(random_state=0, n_jobs=2).fit(task.X_fit)
        knn = FeatureKNN(input_size=160, n_jobs=2).fit(task.X_fit)
        both = FeatureKNN(input_size=160, n_jobs=2).fit(
            np.concatenate([task.X_fit, mirrored(task.X_fit)]))
        row = {"class": int(task.subset), **aurocs(y, mcad, X, "mcad"),
               **aurocs(y, knn, X, "knn-features"),
               **aurocs(y, both, X, "knn-features, mirrored bank")}
        rows.append(row)
        print(row, flush=True)
    pd.DataFrame(rows).to_csv(out, index=False)


if __name__ == "__main__":
    main(*sys.argv[1:])
