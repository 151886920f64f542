"""
Quick start: digits
===================

Fit :class:`skmcad.MCADDetector` on one digit of scikit-learn's bundled 8x8 digits and score
the others: digit 0 is the normal class, every other digit an anomaly. Scores follow PyOD's
convention (higher = more anomalous) and :meth:`~skmcad.MCADDetector.predict` returns 1 for
anomalies. A fit takes about 10 s on one CPU core.
"""

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.metrics import RocCurveDisplay, roc_auc_score

from skmcad import MCADDetector

X, y = load_digits(return_X_y=True)
images = (X / 16.0).reshape(-1, 8, 8)  # (n, H, W) grey images in [0, 1]

X_train = images[:900][y[:900] == 0]  # normal data only: the 0s of the first 900 images
X_test, y_test = images[900:1300], (y[900:1300] != 0).astype(int)  # 1 = anomaly

det = MCADDetector(random_state=0).fit(X_train)
scores = det.decision_function(X_test)  # higher = more anomalous
labels = det.predict(X_test)  # 1 = anomaly, 0 = normal, at threshold_
print(f"{len(X_train)} training images, backbone {det.config_['backbone']!r}")
print(f"test AUROC: {roc_auc_score(y_test, scores):.3f}")
print(f"flagged as anomalies: {labels.mean():.1%} of the test images "
      f"({y_test.mean():.1%} are anomalies)")

# %%
# The scores of the normal test images sit below the threshold learned at ``fit`` (the
# ``1 - contamination`` quantile of the training scores); most anomalies score above it.

fig, (ax_hist, ax_roc) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
bins = np.linspace(scores.min(), scores.max(), 40)
ax_hist.hist(scores[y_test == 0], bins=bins, alpha=0.7, label="normal (digit 0)")
ax_hist.hist(scores[y_test == 1], bins=bins, alpha=0.7, label="anomaly (digits 1-9)")
ax_hist.axvline(det.threshold_, color="k", linestyle="--", label="threshold_")
ax_hist.set_xlabel("decision_function score (higher = more anomalous)")
ax_hist.set_ylabel("test images")
ax_hist.set_title("Score distribution")
ax_hist.legend()
RocCurveDisplay.from_predictions(y_test, scores, name="MCAD", ax=ax_roc,
                                 plot_chance_level=True)
ax_roc.set_title("ROC curve on the test images")
plt.show()
