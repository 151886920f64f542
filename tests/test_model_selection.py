import numpy as np
import pytest
from sklearn.base import BaseEstimator
from sklearn.model_selection import (GridSearchCV, RandomizedSearchCV, cross_val_score,
                                     cross_validate)

from skmcad import MCADDetector
from skmcad.model_selection import NormalTrainSplit


def labelled(n_normal=60, n_anomalies=15, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.permutation(np.r_[np.zeros(n_normal, int), np.ones(n_anomalies, int)])
    X = rng.normal(size=(len(y), 3)) + 4.0 * y[:, None]  # anomalies shifted away
    return X, y


class LabelReader(BaseEstimator):
    """Scores each row by its label column and remembers the labels it was fitted on."""

    def fit(self, X, y=None):
        self.seen_ = np.asarray(X)[:, 0].copy()
        self.y_seen_ = None if y is None else np.asarray(y).copy()
        return self

    def decision_function(self, X):
        return np.asarray(X)[:, 0]


@pytest.mark.parametrize("shuffle", [False, True])
def test_training_folds_hold_only_normal_samples_and_test_folds_both(shuffle):
    X, y = labelled()
    cv = NormalTrainSplit(n_splits=4, shuffle=shuffle, random_state=0)
    tested = []
    for train, test in cv.split(X, y):
        assert (y[train] == 0).all()
        assert set(np.unique(y[test])) == {0, 1}
        assert not set(train) & set(test)
        # every normal sample outside the test fold trains
        assert set(train) == set(np.flatnonzero(y == 0)) - set(test)
        tested.extend(test)
    assert sorted(tested) == list(range(len(y)))
    assert cv.get_n_splits() == 4


@pytest.mark.parametrize("kept, expected", [(2, 2), (100, 11), (0.5, 6), (1.0, 11)])
def test_unbalanced_variant_keeps_some_training_anomalies(kept, expected):
    X, y = labelled()
    for train, test in NormalTrainSplit(4, n_train_anomalies=kept).split(X, y):
        # each training part has 11 or 12 anomalies (15 in 4 stratified folds)
        assert int(y[train].sum()) in (expected, expected + 1 if kept in (100, 1.0) else expected)
        assert not set(train) & set(test)


def test_same_random_state_gives_same_folds_every_call():
    X, y = labelled()
    cv = NormalTrainSplit(3, shuffle=True, random_state=7, n_train_anomalies=2)
    first = [(a.tolist(), b.tolist()) for a, b in cv.split(X, y)]
    assert first == [(a.tolist(), b.tolist()) for a, b in cv.split(X, y)]
    other = NormalTrainSplit(3, shuffle=True, random_state=8).split(X, y)
    assert first[0][1] != next(other)[1].tolist()


def test_cross_validate_fits_each_estimator_on_normal_rows_only():
    X, y = labelled()
    X = np.column_stack([y, X])  # the label column lets the estimator report what it saw
    result = cross_validate(LabelReader(), X, y, cv=NormalTrainSplit(3), scoring="roc_auc",
                            return_estimator=True)
    assert all((est.seen_ == 0).all() for est in result["estimator"])
    assert np.allclose(result["test_score"], 1.0)  # the test folds hold both labels


def test_unbalanced_training_folds_pass_labels_to_fit():
    X, y = labelled()
    X = np.column_stack([y, X])
    result = cross_validate(LabelReader(), X, y, cv=NormalTrainSplit(3, n_train_anomalies=2),
                            scoring="roc_auc", return_estimator=True)
    for est in result["estimator"]:
        assert est.y_seen_.sum() == 2 and np.array_equal(est.y_seen_, est.seen_)


@pytest.mark.parametrize("n_samples, y, message", [
    (15, None, "needs y"),
    (15, np.r_[np.zeros(10), 2 * np.ones(5)], "0 .normal. and 1"),
    (12, np.r_[np.zeros(10), np.ones(2)], "at least 3 normal samples and 3 anomalies"),
    (15, np.zeros(4), "y has 4 labels but X has 15"),
])
def test_bad_labels_raise_a_clear_error(n_samples, y, message):
    with pytest.raises(ValueError, match=message):
        list(NormalTrainSplit(3).split(np.zeros((n_samples, 2)), y))


@pytest.mark.parametrize("params, message", [
    (dict(n_splits=1), "n_splits"), (dict(n_splits=2.5), "n_splits"),
    (dict(n_train_anomalies=-1), "n_train_anomalies"),
    (dict(n_train_anomalies=1.5), "n_train_anomalies"),
])
def test_bad_parameters_raise_a_clear_error(params, message):
    X, y = labelled()
    with pytest.raises(ValueError, match=message):
        list(NormalTrainSplit(**params).split(X, y))


def test_repr_names_the_parameters():
    assert repr(NormalTrainSplit(3, shuffle=True, random_state=0)) == (
        "NormalTrainSplit(n_splits=3, shuffle=True, random_state=0, n_train_anomalies=0)")


TABULAR = dict(memory_size=4, n_scales=2, width=2, stage1_epochs=20, stage2_epochs=1,
               batch_size=32, random_state=0)


def test_grid_and_randomized_search_and_cross_val_score_with_mcad():
    X, y = labelled(n_normal=90, n_anomalies=18)
    cv = NormalTrainSplit(3, shuffle=True, random_state=0)
    search = GridSearchCV(MCADDetector(**TABULAR), {"memory_size": [2, 4]}, scoring="roc_auc",
                          cv=cv, error_score="raise").fit(X, y)
    assert search.cv_results_["mean_test_score"].min() > 0.9  # shifted anomalies are easy
    random_search = RandomizedSearchCV(MCADDetector(**TABULAR), {"memory_size": [2, 4, 8]},
                                       n_iter=2, scoring="average_precision", cv=cv,
                                       random_state=0, error_score="raise").fit(X, y)
    assert np.isfinite(random_search.best_score_)
    scores = cross_val_score(MCADDetector(**TABULAR), X, y, cv=cv, scoring="roc_auc")
    assert scores.shape == (3,) and scores.min() > 0.9


def test_unbalanced_search_gives_fits_their_labelled_anomalies():
    X, y = labelled(n_normal=90, n_anomalies=18)
    cv = NormalTrainSplit(3, shuffle=True, random_state=0, n_train_anomalies=3)
    det = MCADDetector(setting="unbalanced", **TABULAR)
    scores = cross_val_score(det, X, y, cv=cv, scoring="roc_auc", error_score="raise")
    assert scores.min() > 0.9


def test_grid_search_over_memories_and_scorers(digits, tiny_params):
    """The issue's search: every memory x scorer pair is fitted, scored and ranked."""
    X, y = digits
    keep = np.flatnonzero(np.isin(y[:400], [0, 6]))  # digit 0 normal, 6 the anomaly
    labels = (y[keep] == 6).astype(int)
    params = {"memory": ["hopfield", "grid"], "scorer": ["learned", "gaussian", "hybrid"]}
    search = GridSearchCV(MCADDetector(**tiny_params), params, scoring="roc_auc",
                          cv=NormalTrainSplit(n_splits=2, shuffle=True, random_state=0))
    search.fit(X[keep], labels)
    results = search.cv_results_
    assert len(results["params"]) == 6
    assert np.isfinite(results["mean_test_score"]).all()
    assert results["mean_test_score"].max() > 0.9
    assert search.best_params_ == results["params"][int(np.argmin(results["rank_test_score"]))]
    assert search.best_estimator_.memory == search.best_params_["memory"]
