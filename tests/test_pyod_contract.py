"""The scoring methods against PyOD's own implementations and scikit-learn's conventions."""

import warnings

import numpy as np
import pandas as pd
import pytest
from pyod.models.base import BaseDetector

from skmcad import MCADDetector

TABULAR = dict(memory_size=4, n_scales=2, width=2, stage1_epochs=5, stage2_epochs=1,
               random_state=0)


@pytest.fixture(scope="module")
def rows():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 4)), rng.normal(size=(50, 4)) * 2


@pytest.fixture(scope="module")
def fitted(rows):
    return MCADDetector(**TABULAR).fit(rows[0])


def test_score_samples_is_higher_for_normal_samples(fitted, rows):
    _, X_test = rows
    assert np.array_equal(fitted.score_samples(X_test), -fitted.decision_function(X_test))


def test_fit_predict_returns_training_labels_without_warnings(rows):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det = MCADDetector(**TABULAR)
        labels = det.fit_predict(rows[0])
    assert np.array_equal(labels, det.labels_) and labels.mean() == pytest.approx(0.1, abs=0.01)


@pytest.mark.parametrize("method", ["linear", "unify"])
def test_predict_proba_and_confidence_match_pyods_implementation(fitted, rows, method):
    _, X_test = rows
    proba, confidence = fitted.predict_proba(X_test, method=method, return_confidence=True)
    pyod_proba, pyod_confidence = BaseDetector.predict_proba(
        fitted, X_test, method=method, return_confidence=True)
    assert np.allclose(proba, pyod_proba, atol=1e-12)
    assert np.allclose(confidence, pyod_confidence, atol=1e-12)
    assert np.allclose(fitted.predict_confidence(X_test),
                       BaseDetector.predict_confidence(fitted, X_test), atol=1e-12)
    labels, label_confidence = fitted.predict(X_test, return_confidence=True)
    assert np.array_equal(labels, BaseDetector.predict(fitted, X_test))
    assert np.allclose(label_confidence, confidence)


def test_unknown_probability_method_raises_before_scoring(fitted, rows):
    with pytest.raises(ValueError, match="method must be 'linear' or 'unify'"):
        fitted.predict_proba(rows[1], method="softmax")


def test_dataframes_score_without_feature_name_warnings(rows):
    """PyOD's test for its issue #540: fitted and scored on DataFrames, nothing warns."""
    columns = ["a", "b", "c", "d"]
    train, test = (pd.DataFrame(part, columns=columns) for part in rows)
    det = MCADDetector(**TABULAR).fit(train)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        det.decision_function(test)
        det.score_samples(test)
        det.predict(test, return_confidence=True)
        det.predict_confidence(test)
        for method in ("linear", "unify"):
            det.predict_proba(test, method=method)
            det.predict_proba(test, method=method, return_confidence=True)
    with pytest.warns(UserWarning, match="valid feature names"):
        det.predict_proba(test.to_numpy())  # a plain array after a DataFrame fit still warns


def test_verbose_reports_stages_and_scoring_and_silent_prints_nothing(rows, capsys):
    MCADDetector(**TABULAR).fit(rows[0]).decision_function(rows[1])
    assert capsys.readouterr().err == ""
    det = MCADDetector(verbose=1, **TABULAR).fit(rows[0])
    det.decision_function(rows[1])
    err = capsys.readouterr().err
    assert "stage 1" in err and "stage 2" in err
    assert "scoring" in err and "50/50" in err  # the bar counts the scored samples
