"""The unbalanced setting: a few labelled anomalies in fit(X, y)."""

import os

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV

from skmcad import MCADDetector

PARAMS = dict(backbone="resnet", memory_size=16, width=8, stage1_epochs=10, stage2_epochs=5,
              batch_size=64, random_state=0)


@pytest.fixture(scope="module")
def split(digits=None):
    """Normal: digit 1 (hard to tell from 7 by pixels). Labelled anomalies: 12 images of 7.
    Held-out test: other 1s and other 7s."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)
    ones, sevens = np.flatnonzero(y == 1), np.flatnonzero(y == 7)
    X_fit = np.concatenate([images[ones[:120]], images[sevens[:12]]])
    y_fit = np.r_[np.zeros(120, int), np.ones(12, int)]
    X_test = np.concatenate([images[ones[120:]], images[sevens[12:]]])
    y_test = np.r_[np.zeros(len(ones) - 120, int), np.ones(len(sevens) - 12, int)]
    return X_fit, y_fit, X_test, y_test


def test_labelled_anomalies_raise_auroc_on_anomalies_of_the_same_kind(split):
    X_fit, y_fit, X_test, y_test = split
    one_class = MCADDetector(**PARAMS).fit(X_fit, y_fit)  # y ignored: 7s are contamination
    unbalanced = MCADDetector(**PARAMS, setting="unbalanced").fit(X_fit, y_fit)
    auroc_one_class = roc_auc_score(y_test, one_class.decision_function(X_test))
    auroc_unbalanced = roc_auc_score(y_test, unbalanced.decision_function(X_test))
    assert auroc_unbalanced > auroc_one_class + 0.05
    assert auroc_unbalanced > 0.9


def test_one_class_ignores_y(split, tiny_params):
    X_fit, y_fit, X_test, _ = split
    with_y = MCADDetector(**tiny_params).fit(X_fit, y_fit).decision_function(X_test)
    without = MCADDetector(**tiny_params).fit(X_fit).decision_function(X_test)
    assert np.array_equal(with_y, without)


def test_unbalanced_fit_scores_every_training_sample(split, tiny_params):
    X_fit, y_fit, _, _ = split
    det = MCADDetector(**tiny_params, setting="unbalanced").fit(X_fit, y_fit)
    assert det.decision_scores_.shape == (len(X_fit),)
    assert det.scorer_.head is not None


@pytest.mark.parametrize("y, message", [
    (None, "needs y"),
    (np.zeros(132, int), "at least one labelled anomaly"),
    (np.r_[np.ones(130, int), np.zeros(2, int)], "at least 4 normal samples"),
    (np.r_[np.zeros(131, int), 2], r"0 \(normal\) and 1"),
    (np.zeros(10, int), "10 labels but X has 132"),
])
def test_bad_labels_are_refused_and_leave_the_detector_as_it_was(split, tiny_params, y, message):
    X_fit, y_fit, X_test, _ = split
    det = MCADDetector(**tiny_params, setting="unbalanced").fit(X_fit, y_fit)
    before = det.decision_function(X_test)
    with pytest.raises(ValueError, match=message):
        det.fit(X_fit, y)
    assert np.array_equal(det.decision_function(X_test), before)


@pytest.mark.parametrize("setting", ["one-class", "unbalanced"])
@pytest.mark.parametrize("scoring", ["roc_auc", "average_precision"])
def test_grid_search_over_per_scale_memory_sizes(split, tiny_params, setting, scoring):
    X_fit, y_fit, _, _ = split
    order = np.random.default_rng(0).permutation(len(X_fit))  # both labels in each fold
    grid = {"memory_size": [(4, 8), (8, 4)], "n_scales": [2]}
    search = GridSearchCV(MCADDetector(**tiny_params, setting=setting), grid, scoring=scoring,
                          cv=2, error_score="raise").fit(X_fit[order], y_fit[order])
    assert search.best_params_["memory_size"] in [(4, 8), (8, 4)]
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


def _torch_threads(estimator, X, y):
    """A 'scorer' reporting the torch thread count of the process the fold ran in."""
    return float(torch.get_num_threads())


@pytest.mark.parametrize("setting", ["one-class", "unbalanced"])
def test_parallel_grid_search_matches_serial_and_keeps_one_core_per_worker(
        split, tiny_params, setting):
    X_fit, y_fit, _, _ = split
    order = np.random.default_rng(0).permutation(len(X_fit))  # both labels in each fold
    X, y = X_fit[order], y_fit[order]
    scoring = {"auc": "roc_auc", "threads": _torch_threads}
    searches = [GridSearchCV(MCADDetector(**tiny_params, setting=setting),
                             {"memory_size": [4, 8]}, scoring=scoring, refit="auc", cv=2,
                             n_jobs=n_jobs, error_score="raise").fit(X, y)
                for n_jobs in (1, 2)]
    serial, parallel = (s.cv_results_ for s in searches)
    # same seeds, same folds: the same models up to float rounding of other thread counts
    assert np.allclose(parallel["mean_test_auc"], serial["mean_test_auc"], atol=0.02)
    # joblib caps each worker's native threads at cores // n_jobs, so 2 workers do not fight
    # over the cores with 2 torch threads each
    cap = max(1, (os.cpu_count() or 1) // 2)
    assert parallel["mean_test_threads"].max() <= cap
    assert searches[1].best_estimator_.decision_function(X).shape == (len(X),)
