"""
CIFAR-10, one class
===================

The one-class protocol on CIFAR-10: train on images of one class (here airplanes), score
test images of every class; the training class is normal, the nine others are anomalies.
To keep this example to about 3 minutes on 2 CPU cores it fits on 500 training airplanes
and scores 1,500 test images (the detector reads them at 160 px); the package's benchmark
runs every class, on 1,000 training and 2,000 test images each (:doc:`/benchmarks`).

The data are read with :func:`skmcad.datasets.load_cifar10` from the folder named by the
environment variable ``SKMCAD_DATA`` (its ``cifar10/`` subfolder holding the official
``cifar-10-python.tar.gz``; :doc:`/user_guide/datasets` says where to get it). When the
files are not there, the example prints a note and draws only that note.
"""

import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.datasets import load_cifar10, resolve_data_dir

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
           "truck"]
NORMAL = 0  # airplane

try:
    X_train, y_train, X_test, y_test = load_cifar10(os.environ.get("SKMCAD_DATA"))
except FileNotFoundError as error:
    X_train = None
    note = (f"CIFAR-10 not found in {resolve_data_dir(None, 'cifar10')}: this example "
            "was skipped. Set SKMCAD_DATA to a folder holding "
            "cifar10/cifar-10-python.tar.gz to run it, or fetch the official archive "
            "there with skmcad.datasets.load_cifar10(download=True).")
    print(textwrap.fill(note, 88))
    print(textwrap.fill(f"({error})", 88))

# %%
# Fit on 500 airplanes (uint8 images, ``(n, 32, 32, 3)``, are scaled by 1/255 by the
# detector) and score 1,500 random test images.

if X_train is not None:
    rng = np.random.default_rng(0)
    normal = X_train[y_train == NORMAL]
    X_fit = normal[rng.choice(len(normal), 500, replace=False)]
    test = rng.choice(len(X_test), 1500, replace=False)
    X_eval, classes = X_test[test], y_test[test]
    det = MCADDetector(random_state=0).fit(X_fit)
    scores = det.decision_function(X_eval)
    auroc = roc_auc_score(classes != NORMAL, scores)
    print(f"AUROC, airplane normal against the nine other classes: {auroc:.3f}")
    per_class = {c: roc_auc_score(np.r_[np.zeros((classes == NORMAL).sum()),
                                        np.ones((classes == c).sum())],
                                  np.r_[scores[classes == NORMAL], scores[classes == c]])
                 for c in range(10) if c != NORMAL}
    for c, value in per_class.items():
        print(f"  airplane vs {CLASSES[c]:<10} AUROC {value:.3f}")

# %%
# Scores of the test images by class, the normal class first, then the others from the
# hardest to tell from airplanes (lowest AUROC) to the easiest.

if X_train is not None:
    fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
    order = [NORMAL] + sorted(per_class, key=per_class.get)
    ax.boxplot([scores[classes == c] for c in order], showfliers=False)
    ax.set_xticks(np.arange(1, 11), [CLASSES[c] + (" (normal)" if c == NORMAL else
                                                   f"\n{per_class[c]:.2f}")
                                     for c in order], fontsize=8)
    ax.axhline(det.threshold_, color="k", linestyle="--", linewidth=1, label="threshold_")
    ax.set_xlabel("test class (below: AUROC against the airplanes)")
    ax.set_ylabel("decision_function score")
    ax.set_title(f"CIFAR-10, airplane normal: AUROC {auroc:.3f} over 1,500 test images")
    ax.legend()
else:
    fig, ax = plt.subplots(figsize=(7, 2), layout="constrained")
    ax.text(0.5, 0.5, "CIFAR-10 not found: example skipped.\n"
            "Set SKMCAD_DATA to a folder holding cifar10/cifar-10-python.tar.gz.",
            ha="center", va="center", wrap=True)
    ax.set_axis_off()
plt.show()
