"""
Choosing a memory and a scorer
==============================

Besides the paper's modern-Hopfield memory and its learned stage-2 scorer,
:class:`skmcad.MCADDetector` offers parts of related systems as parameters, so that a search
can choose between them:

- ``memory="grid"``: prototypes on a 2-D grid, read by bilinear interpolation at continuous
  coordinates a small head gives each feature (as GRAD/CRAD);
- ``scorer="gaussian"``: a bounded Gaussian score ``1 - exp(-d^2 / sigma)`` of the pooled
  multi-scale descriptors, centre and ``sigma`` estimated on held-out normal data (as IGD);
- ``scorer="hybrid"``: per position, the memory's deviation plus a discriminative head
  trained against synthetic anomalies (as DenseHybrid), so the map uses it too.

Here digits 0-4 are the normal class and 5-9 the anomalies (the first 450 digits),
and :class:`skmcad.model_selection.NormalTrainSplit` gives training folds of normal digits
only: 2 memories x 3 scorers x 2 folds, twelve fits of the pretrained image default. Its
backbone stays frozen here (``adapt_steps=0``): the adaptation would be the same in every fit
and take most of its time. About 85 seconds on 2 CPU cores.
"""

import matplotlib.pyplot as plt
import pandas as pd
from sklearn.datasets import load_digits
from sklearn.model_selection import GridSearchCV

from skmcad import MCADDetector
from skmcad.model_selection import NormalTrainSplit

X, y = load_digits(return_X_y=True)
images = (X[:450] / 16.0).reshape(-1, 8, 8)
is_anomaly = (y[:450] >= 5).astype(int)  # digits 0-4 normal (0), 5-9 anomalies (1)

grid = {"memory": ["hopfield", "grid"], "scorer": ["learned", "gaussian", "hybrid"]}
search = GridSearchCV(MCADDetector(adapt_steps=0, random_state=0), grid, scoring="roc_auc",
                      cv=NormalTrainSplit(n_splits=2, shuffle=True, random_state=0),
                      refit=False)
search.fit(images, is_anomaly)
print("best:", search.best_params_, f"mean AUROC {search.best_score_:.3f}")

# %%
# One row per pair: the AUROC on each test fold, their mean and the mean fit time.

columns = ["param_memory", "param_scorer", "split0_test_score", "split1_test_score",
           "mean_test_score", "mean_fit_time"]
results = pd.DataFrame(search.cv_results_)[columns].round(3)
results

# %%
# The mean AUROC of each pair (the y axis starts near the lowest, so that differences show).

table = results.pivot(index="param_scorer", columns="param_memory", values="mean_test_score")
ax = table.plot.bar(figsize=(6.5, 4), rot=0, ylim=(max(0.0, table.min().min() - 0.02), 1.0))
ax.set_xlabel("scorer")
ax.set_ylabel("mean AUROC over the folds")
ax.legend(title="memory")
plt.tight_layout()
plt.show()
