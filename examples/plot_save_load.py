"""
Save and load a fitted detector
===============================

A fitted :class:`skmcad.MCADDetector` can be kept two ways:

- :meth:`~skmcad.MCADDetector.save` / :meth:`~skmcad.MCADDetector.load`: a weights-only
  torch file holding tensors, numbers and strings; loading it runs no code from the file,
  and a detector fitted on a GPU loads and scores on a machine without one;
- ``pickle`` or ``joblib``, as any scikit-learn estimator (a pickle runs code when it is
  loaded: only load pickles you trust).

Both give back a detector whose scores equal the original's.
"""

import os
import pickle
import tempfile

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits

from skmcad import MCADDetector

X, y = load_digits(return_X_y=True)
images = (X / 16.0).reshape(-1, 8, 8)
det = MCADDetector(random_state=0).fit(images[:900][y[:900] == 3])
X_test = images[900:1100]
scores = det.decision_function(X_test)

folder = tempfile.mkdtemp()
path = os.path.join(folder, "detector.pt")
det.save(path)
loaded = MCADDetector.load(path)
print(f"saved to a {os.path.getsize(path) / 1e6:.1f} MB file")

with open(os.path.join(folder, "detector.pkl"), "wb") as f:
    pickle.dump(det, f)
with open(os.path.join(folder, "detector.pkl"), "rb") as f:
    unpickled = pickle.load(f)

scores_loaded = loaded.decision_function(X_test)
scores_unpickled = unpickled.decision_function(X_test)
print("save/load scores equal:", np.allclose(scores, scores_loaded))
print("pickle scores equal:   ", np.allclose(scores, scores_unpickled))
print("same threshold_:       ", loaded.threshold_ == det.threshold_)
print("same parameters:       ", loaded.get_params() == det.get_params())

# %%
# Every point lies on the diagonal: the loaded detector scores as the one that was saved.

fig, ax = plt.subplots(figsize=(5, 5), layout="constrained")
ax.scatter(scores, scores_loaded, s=12, label="MCADDetector.load")
ax.scatter(scores, scores_unpickled, s=40, facecolors="none", edgecolors="C1",
           label="pickle.load")
lims = [scores.min(), scores.max()]
ax.plot(lims, lims, "k--", linewidth=1, label="y = x")
ax.set_xlabel("score of the fitted detector")
ax.set_ylabel("score of the loaded detector")
ax.set_title("Scores before and after saving")
ax.legend()
plt.show()
