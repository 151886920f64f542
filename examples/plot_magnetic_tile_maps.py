"""
Anomaly maps on Magnetic Tile images
====================================

Where a defect is, not only whether an image has one. :meth:`skmcad.MCADDetector.anomaly_map`
returns one map per image, at the image's size: the per-scale deviations between features and
what they are compared with, weighted as in the score and upsampled. For defects the detector
reads the two stride-16 stages of its pretrained backbone (``stages=(4, 5)``), averages each
feature with its 3 x 3 neighbours (``neighbourhood=3``) and compares each position with its
nearest training features (``use_memory=False``): the configuration the user guide's settings
page recommends for defects.

The Magnetic Tile Defect set (Huang, Qiu and Yuan, 2020) holds 952 defect-free grey images of
magnetic tiles and 392 images with a defect (blowhole, break, crack, fray, uneven), each with a
pixel mask. It is read with :func:`skmcad.datasets.load_magnetic_tile` from the folder named by
the environment variable ``SKMCAD_DATA`` (its ``magnetic_tile/`` subfolder holding the authors'
``MT_*`` folders; :doc:`/user_guide/datasets` says where to get them), resized to 128 px.
When the files are not there, the example prints a note and draws only that note.

To run in about a minute on 2 CPU cores the detector is fitted on 300 defect-free images and
evaluated on 100 other defect-free images and 100 defect images; the package's benchmark runs
the full protocol (:doc:`/benchmarks`, "Magnetic Tile, localisation"), with PatchCore and
PaDiM on the same backbone beside MCAD.
"""

import os
import textwrap

import matplotlib.pyplot as plt
import numpy as np
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.datasets import load_magnetic_tile, resolve_data_dir
from skmcad.metrics import aupro, pixel_auroc

try:
    images, labels, masks, classes = load_magnetic_tile(os.environ.get("SKMCAD_DATA"),
                                                        size=128)
except FileNotFoundError as error:
    images = None
    note = (f"Magnetic Tile not found in {resolve_data_dir(None, 'magnetic_tile')}: this "
            "example was skipped. Set SKMCAD_DATA to a folder holding magnetic_tile/MT_*/ "
            "to run it.")
    print(textwrap.fill(note, 88))
    print(textwrap.fill(f"({error})", 88))

# %%
# Split the defect-free images between training and test; every test image keeps its mask.

if images is not None:
    rng = np.random.default_rng(0)
    free = rng.permutation(np.flatnonzero(labels == 0))
    defects = rng.permutation(np.flatnonzero(labels == 1))
    fit, test = free[:300], np.r_[free[300:400], defects[:100]]
    # input_size=128: the backbone reads the 128-px images as they are (the default, 96 px,
    # is sized for CIFAR-like objects, not thin cracks)
    det = MCADDetector(stages=(4, 5), neighbourhood=3, use_memory=False, input_size=128,
                       random_state=0).fit(images[fit])
    scores = det.decision_function(images[test])
    maps = det.anomaly_map(images[test])  # (200, 128, 128)
    summary = (f"image AUROC {roc_auc_score(labels[test], scores):.3f}, "
               f"pixel AUROC {pixel_auroc(masks[test], maps):.3f}, "
               f"AUPRO (30 % FPR) {aupro(masks[test], maps):.3f}")
    print(summary)

# %%
# One test image per defect class and one defect-free image: the image, its defect mask
# and MCAD's anomaly map (one colour scale for every map).

if images is not None:
    shown = [next(i for i in range(len(test)) if classes[test[i]] == name)
             for name in ["Blowhole", "Break", "Crack", "Fray", "Uneven", "Free"]]
    vmin, vmax = np.percentile(maps[shown], [1, 99])
    fig, axes = plt.subplots(3, len(shown), figsize=(12, 6.4), layout="constrained")
    for column, i in enumerate(shown):
        axes[0, column].imshow(images[test[i]], cmap="gray")
        name = "Free (no defect)" if classes[test[i]] == "Free" else classes[test[i]]
        axes[0, column].set_title(f"{name}\nscore {scores[i]:.2f}", fontsize=9)
        axes[1, column].imshow(masks[test[i]], cmap="gray", vmin=0, vmax=1)
        im = axes[2, column].imshow(maps[i], cmap="inferno", vmin=vmin, vmax=vmax)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    for row, name in enumerate(["image", "defect mask", "anomaly map"]):
        axes[row, 0].set_ylabel(name)
    fig.colorbar(im, ax=axes[2, :], shrink=0.8, label="anomaly_map value")
    fig.suptitle(f"MCAD on 200 test images (threshold_ {det.threshold_:.2f}): {summary}")
else:
    fig, ax = plt.subplots(figsize=(7, 2), layout="constrained")
    ax.text(0.5, 0.5, "Magnetic Tile not found: example skipped.\n"
            "Set SKMCAD_DATA to a folder holding magnetic_tile/MT_*/.",
            ha="center", va="center")
    ax.set_axis_off()
plt.show()
