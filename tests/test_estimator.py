import pickle
import random

import joblib
import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skmcad import MCADDetector


@pytest.fixture(scope="module")
def one_class_digits():
    """Digit 0 as the normal class: 120 training images, and a mixed test set."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    images = (X / 16.0).reshape(-1, 8, 8).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(images))
    train, test = order[:900], order[900:]
    X_fit = images[train][y[train] == 0]
    return X_fit, images[test], (y[test] != 0).astype(int)


@pytest.fixture(scope="module")
def fitted(one_class_digits):
    X_fit, _, _ = one_class_digits
    params = dict(backbone="resnet", memory_size=16, width=8, stage1_epochs=15, stage2_epochs=3,
                  batch_size=64, random_state=0)
    return MCADDetector(**params).fit(X_fit)


def test_detector_separates_other_digits_from_the_normal_one(fitted, one_class_digits):
    _, X_test, y_test = one_class_digits
    auroc = roc_auc_score(y_test, fitted.decision_function(X_test))
    assert auroc > 0.8  # chance is 0.5; a detector with a broken memory or sign scores far lower


def test_fitted_state_follows_the_pyod_contract(fitted, one_class_digits):
    X_fit, X_test, _ = one_class_digits
    assert fitted.decision_scores_.shape == (len(X_fit),)
    assert fitted.decision_scores_.dtype == np.float64
    expected_threshold = np.percentile(fitted.decision_scores_, 90)
    assert fitted.threshold_ == pytest.approx(expected_threshold)
    assert fitted.labels_.mean() == pytest.approx(0.1, abs=0.03)
    labels = fitted.predict(X_test)
    scores = fitted.decision_function(X_test)
    assert np.array_equal(labels, (scores > fitted.threshold_).astype(int))
    assert len(fitted.history_["stage1"]) == 15 and len(fitted.history_["stage2"]) == 3
    assert fitted.n_features_in_ == 64


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_predict_proba_is_a_probability_increasing_with_the_score(fitted, one_class_digits, method):
    _, X_test, _ = one_class_digits
    proba = fitted.predict_proba(X_test, method=method)
    scores = fitted.decision_function(X_test)
    assert proba.shape == (len(X_test), 2)
    assert np.allclose(proba.sum(axis=1), 1.0)
    assert (proba >= 0).all() and (proba <= 1).all()
    order = np.argsort(scores)
    assert (np.diff(proba[order, 1]) >= -1e-12).all()


def test_scoring_methods_take_nested_lists_like_arrays(fitted, one_class_digits):
    _, X_test, _ = one_class_digits
    X_list = X_test[:5].tolist()
    for method in ("decision_function", "predict", "predict_proba", "predict_confidence"):
        expected = getattr(fitted, method)(X_test[:5])
        assert np.array_equal(getattr(fitted, method)(X_list), expected), method


def test_predict_confidence_lies_in_unit_interval(fitted, one_class_digits):
    _, X_test, _ = one_class_digits
    confidence = fitted.predict_confidence(X_test)
    assert confidence.shape == (len(X_test),)
    assert ((confidence >= 0) & (confidence <= 1)).all()
    labels, conf2 = fitted.predict(X_test, return_confidence=True)
    assert np.allclose(confidence, conf2)


def test_anomaly_map_has_input_size_and_matches_score_ranking(fitted, one_class_digits):
    _, X_test, y_test = one_class_digits
    maps = fitted.anomaly_map(X_test)
    assert maps.shape == (len(X_test), 8, 8)
    assert roc_auc_score(y_test, maps.mean(axis=(1, 2))) > 0.8


def test_same_seed_gives_same_scores_and_other_seed_differs(one_class_digits, tiny_params):
    X_fit, X_test, _ = one_class_digits
    first = MCADDetector(**tiny_params).fit(X_fit).decision_function(X_test)
    second = MCADDetector(**tiny_params).fit(X_fit).decision_function(X_test)
    other = MCADDetector(**{**tiny_params, "random_state": 1}).fit(X_fit).decision_function(X_test)
    assert np.array_equal(first, second)
    assert not np.allclose(first, other)


def test_fit_leaves_global_random_states_untouched(one_class_digits, tiny_params):
    X_fit, _, _ = one_class_digits
    states = (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state())
    MCADDetector(**{**tiny_params, "random_state": None}).fit(X_fit)
    assert np.array_equal(np.random.get_state()[1], states[0])
    assert random.getstate() == states[1]
    assert torch.equal(torch.get_rng_state(), states[2])


def test_explicit_cpu_device(one_class_digits, tiny_params):
    X_fit, X_test, _ = one_class_digits
    det = MCADDetector(**tiny_params, device="cpu").fit(X_fit)
    assert det.device_ == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in det.network_.parameters())
    assert np.isfinite(det.decision_function(X_test)).all()


def test_clone_copies_parameters_not_fitted_state(fitted):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "network_")


@pytest.mark.parametrize("dump, load", [
    (pickle.dumps, pickle.loads),
    (lambda obj: joblib_roundtrip(obj), lambda obj: obj),
])
def test_pickling_keeps_identical_scores(fitted, one_class_digits, dump, load):
    _, X_test, _ = one_class_digits
    restored = load(dump(fitted))
    assert np.array_equal(restored.decision_function(X_test), fitted.decision_function(X_test))


def joblib_roundtrip(obj, _store={}):
    import io

    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def test_pipeline_with_flattened_images(one_class_digits, tiny_params):
    X_fit, X_test, y_test = one_class_digits
    flat = FunctionTransformer(lambda X: X.reshape(len(X), -1))
    pipe = make_pipeline(flat, MCADDetector(**tiny_params, image_shape=(8, 8))).fit(X_fit)
    assert pipe[-1].layout_.kind == "image"
    assert pipe.decision_function(X_test).shape == (len(X_test),)
    assert set(np.unique(pipe.predict(X_test))) <= {0, 1}


def test_grid_search_over_memory_size_with_roc_auc(digits, tiny_params):
    images, y = digits
    subset = np.r_[np.flatnonzero(y == 0)[:60], np.flatnonzero(y != 0)[:20]]
    subset = np.random.default_rng(0).permutation(subset)  # both labels in each fold
    X, labels = images[subset], (y[subset] != 0).astype(int)
    search = GridSearchCV(MCADDetector(**tiny_params), {"memory_size": [8, 16]},
                          scoring="roc_auc", cv=2, error_score="raise").fit(X, labels)
    assert search.best_params_["memory_size"] in (8, 16)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()


@pytest.mark.parametrize("steps", range(1, 21))
def test_every_stage1_step_count_fits(steps):
    # 40 rows: 36 train stage 1 in one batch, so stage1_epochs is the optimiser step count
    X = np.random.default_rng(steps).normal(size=(40, 3))
    det = MCADDetector(memory_size=4, width=2, stage1_epochs=steps, stage2_epochs=1,
                       batch_size=36, random_state=0).fit(X)
    assert len(det.history_["stage1"]) == steps
    assert np.isfinite(det.decision_scores_).all()
