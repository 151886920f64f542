"""
MCAD in a PyOD comparison loop
==============================

:class:`skmcad.MCADDetector` follows PyOD's detector contract, so it drops into the loop
one writes for PyOD's detectors: the same ``fit``, ``decision_function`` (higher = more
anomalous) and ``predict`` (1 = anomaly). Here it runs beside PyOD's IForest, KNN and ECOD
on the digits, one-class: each of four digits in turn is the normal class (trained on that
digit's images of the training half), and the whole test half is scored.

The classical detectors get the flattened pixels, MCAD the images. On these 8x8 digits,
pixel kNN is already near perfect; the package's benchmark (:doc:`/benchmarks`) shows where
MCAD is ahead (CIFAR-10) and where it is not. About 1.5 minutes on 2 CPU cores.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pyod.models.ecod import ECOD
from pyod.models.iforest import IForest
from pyod.models.knn import KNN
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from skmcad import MCADDetector
from skmcad.datasets import load_digits_images

images, digits = load_digits_images()
X_train, X_test, y_train, y_test = train_test_split(images, digits, test_size=0.5,
                                                    stratify=digits, random_state=0)

detectors = {
    "IForest": lambda: IForest(random_state=0),
    "KNN": lambda: KNN(),
    "ECOD": lambda: ECOD(),
    "MCAD": lambda: MCADDetector(random_state=0),
}
rows = []
for digit in [1, 3, 7, 9]:
    normal_train = X_train[y_train == digit]
    is_anomaly = (y_test != digit).astype(int)
    for name, make in detectors.items():
        flat = name != "MCAD"  # PyOD's detectors take rows; MCAD takes the images
        fit_data = normal_train.reshape(len(normal_train), -1) if flat else normal_train
        test_data = X_test.reshape(len(X_test), -1) if flat else X_test
        start = time.perf_counter()
        det = make().fit(fit_data)
        seconds = time.perf_counter() - start
        auroc = roc_auc_score(is_anomaly, det.decision_function(test_data))
        rows.append({"normal digit": digit, "detector": name, "AUROC": auroc,
                     "fit s": seconds})

results = pd.DataFrame(rows)
table = results.pivot(index="normal digit", columns="detector", values="AUROC")
table = table[list(detectors)]  # columns in the order of the loop
table.loc["mean"] = table.mean()
table.round(3)

# %%
# Fit seconds per detector (mean over the four digits): MCAD trains networks, the others
# do not.

results.groupby("detector")["fit s"].mean().round(2)

# %%
# AUROC per normal digit and detector, with the value on each bar. The dashed line is a
# random ranking (0.5); the y axis starts a little below the lowest bar.

names = list(detectors)
digits_shown = [d for d in table.index if d != "mean"]
width = 0.8 / len(names)
fig, ax = plt.subplots(figsize=(9, 4.5), layout="constrained")
for i, name in enumerate(names):
    positions = np.arange(len(digits_shown)) + (i - (len(names) - 1) / 2) * width
    bars = ax.bar(positions, table.loc[digits_shown, name], width, label=name)
    ax.bar_label(bars, fmt="%.2f", padding=2, fontsize=8)
ax.set_xticks(np.arange(len(digits_shown)), [f"digit {d}" for d in digits_shown])
ax.set_xlabel("normal class (every other digit is an anomaly)")
ax.set_ylabel("test AUROC")
ax.axhline(0.5, color="grey", linestyle="--", linewidth=1)
ax.set_ylim(min(0.45, table.to_numpy().min() - 0.05), 1.04)
ax.set_title("MCAD beside PyOD's detectors, digits one-class")
ax.legend(title="detector", loc="center left", bbox_to_anchor=(1.0, 0.5))
plt.show()
