"""
Model search over the memory size
=================================

scikit-learn's searches work with :class:`skmcad.MCADDetector` as they stand, given a
cross-validation splitter suited to anomaly detection: a one-class detector must be trained
on normal data only, while ``roc_auc`` needs test folds with both normal samples and
anomalies. :class:`skmcad.model_selection.NormalTrainSplit` gives exactly that: stratified
test folds with every sample, training folds with the normal samples only. Labels follow
PyOD's convention (1 = anomaly), so ``scoring="roc_auc"`` is the right way round.

Here digits 0-4 are the normal class and 5-9 the anomalies (the first 450 digits), and the
search compares a learned memory (``memory="hopfield"``, the paper's; the image default
compares features with a kNN bank instead) of 8 prototypes per scale with one of 256: 3 folds
x 2 values,
six fits, under a minute on 2 CPU cores. The backbone stays frozen (``adapt_steps=0``): its
adaptation would be the same in every fit and take most of its time. ``refit=False`` skips
the final fit of the best value on all the data, which a search that is to be used afterwards
would keep.
"""

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from skmcad import MCADDetector
from skmcad.model_selection import NormalTrainSplit

X, y = load_digits(return_X_y=True)
images = (X[:450] / 16.0).reshape(-1, 8, 8)
is_anomaly = (y[:450] >= 5).astype(int)  # digits 0-4 normal (0), 5-9 anomalies (1)

cv = NormalTrainSplit(n_splits=3, shuffle=True, random_state=0)
detector = MCADDetector(memory="hopfield", adapt_steps=0, random_state=0)
search = GridSearchCV(detector, {"memory_size": [8, 256]}, scoring="roc_auc", cv=cv,
                      refit=False)
search.fit(images, is_anomaly)
print("best:", search.best_params_, f"mean AUROC {search.best_score_:.3f}")

# %%
# The results table: one row per memory size, its AUROC on each test fold, their mean and
# spread, and the time of each fit.

columns = ["param_memory_size", "split0_test_score", "split1_test_score",
           "split2_test_score", "mean_test_score", "std_test_score", "mean_fit_time"]
results = pd.DataFrame(search.cv_results_)[columns].round(3)
results

# %%
# Each dot is one test fold; the bar is their mean. The y axis starts near the lowest
# score, so that the difference shows.

fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
positions = np.arange(len(results))
fold_scores = results[[f"split{i}_test_score" for i in range(3)]].to_numpy()
ax.bar(positions, results["mean_test_score"], width=0.5, color="C0", alpha=0.5,
       label="mean over the folds")
for k, (position, scores) in enumerate(zip(positions, fold_scores)):
    ax.plot(np.full(len(scores), position), scores, "o", color="C0",
            label="one test fold" if k == 0 else None)
for position, mean in zip(positions, results["mean_test_score"]):
    ax.annotate(f"mean {mean:.3f}", (position + 0.27, mean), va="center")
ax.set_xticks(positions, [str(m) for m in results["param_memory_size"]])
ax.set_xlim(-0.5, len(results) - 0.1)
ax.set_xlabel("memory_size (prototypes per scale)")
ax.set_ylabel("AUROC on the test fold")
low = fold_scores.min()
ax.set_ylim(max(0.0, low - 0.05), 1.0)
ax.set_title("GridSearchCV with NormalTrainSplit, digits 0-4 normal")
ax.legend(loc="upper left")
plt.show()
