"""An interrupted or failed fit leaves the estimator exactly as it was before: an unfitted one
unfitted, a fitted one with the same modules and scores; a refit then works (issue
"Reliability")."""

import random

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone

import skmcad._detector
import skmcad.frozen_features
import skmcad.inputs
import skmcad._loop
import skmcad.stage1
import skmcad.stage2
from skmcad import MCADDetector

TINY = dict(stage1_epochs=2, stage2_epochs=2, width=2, memory_size=3, n_scales=2, batch_size=8,
            input_size=32, random_state=0)

_rng = np.random.default_rng(0)
X_TAB = _rng.normal(size=(32, 5))
X_NEW = _rng.normal(size=(32, 4)) + 1.0  # other data, other feature count


@pytest.fixture(scope="module")
def reference_scores():
    return MCADDetector(**TINY).fit(X_TAB).decision_function(X_TAB)


def interrupt(monkeypatch, where, name, on_call, error):
    """Replace ``where.name`` by a function (so methods still bind) whose ``on_call``-th call
    raises ``error``; returns the list of its calls."""
    original = getattr(where, name)
    calls = []

    def failing(*args, **kwargs):
        calls.append(name)
        if len(calls) == on_call:
            raise error
        return original(*args, **kwargs)

    monkeypatch.setattr(where, name, failing)
    return calls


# (where, name, which call fails): from the first pass over the data to the very last step,
# after fit has already assigned the new fitted attributes
FAILURE_POINTS = [
    (skmcad.inputs.InputLayout, "to_batch", 1),
    (skmcad.inputs.Standardizer, "transform", 1),
    (skmcad.stage1, "stage1_loss", 2),
    (skmcad._detector, "finalize_memories", 1),
    (skmcad._detector, "FrozenFeatures", 1),
    (skmcad.frozen_features.FrozenFeatures, "outputs", 2),
    (skmcad.stage2, "stage2_loss", 3),
    (skmcad._detector, "train_stage2", 1),
    (MCADDetector, "_training_scores", 1),
    (MCADDetector, "_process_decision_scores", 1),
]
FAILURE_IDS = [f"{getattr(where, '__name__', where)}.{name}#{call}"
               for where, name, call in FAILURE_POINTS]
ERRORS = [KeyboardInterrupt(), MemoryError(), RuntimeError("out of memory (simulated)")]


def global_state():
    return (np.random.get_state()[1].copy(), random.getstate(), torch.get_rng_state(),
            torch.is_grad_enabled())


def assert_global_state(before):
    after = global_state()
    assert np.array_equal(after[0], before[0]) and after[1] == before[1]
    assert torch.equal(after[2], before[2]) and after[3] == before[3]


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("where, name, on_call", FAILURE_POINTS, ids=FAILURE_IDS)
def test_interrupted_fit_leaves_an_unfitted_estimator_unfitted(
        monkeypatch, reference_scores, where, name, on_call, error):
    detector = MCADDetector(**TINY)
    params_before = dict(detector.__dict__)
    state_before = global_state()
    calls = interrupt(monkeypatch, where, name, on_call, error)
    with pytest.raises(type(error)):
        detector.fit(X_TAB)
    assert len(calls) == on_call  # the failure really happened where intended
    assert detector.__dict__ == params_before  # no attribute ending in "_", nothing private
    assert [k for k in vars(detector) if k.endswith("_") or k.startswith("_")] == []
    assert_global_state(state_before)

    monkeypatch.undo()
    assert np.array_equal(detector.fit(X_TAB).decision_function(X_TAB), reference_scores)


@pytest.mark.parametrize("error", ERRORS[:1], ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("where, name, on_call", FAILURE_POINTS, ids=FAILURE_IDS)
def test_interrupted_refit_leaves_a_fitted_estimator_exactly_as_it_was(
        monkeypatch, reference_scores, where, name, on_call, error):
    detector = MCADDetector(**TINY).fit(X_TAB)
    before = dict(detector.__dict__)
    weights = {k: v.clone() for k, v in detector.network_.state_dict().items()}
    interrupt(monkeypatch, where, name, on_call, error)
    with pytest.raises(type(error)):
        detector.fit(X_NEW)
    assert detector.__dict__.keys() == before.keys()
    assert all(detector.__dict__[k] is v for k, v in before.items())  # same objects
    assert all(torch.equal(v, weights[k]) for k, v in detector.network_.state_dict().items())
    assert detector.n_features_in_ == 5
    assert np.array_equal(detector.decision_function(X_TAB), reference_scores)

    monkeypatch.undo()
    refit = detector.fit(X_NEW)
    assert refit.n_features_in_ == 4 and refit.network_ is not before["network_"]
    assert np.isfinite(refit.decision_function(X_NEW)).all()


def test_bad_data_found_late_in_a_refit_keeps_nothing_half_done():
    """NaN in the last batch is only seen after ``n_features_in_`` and the feature names
    have been reset for the new data: they come back too."""
    frame = pd.DataFrame(X_TAB, columns=list("abcde"))
    detector = MCADDetector(**TINY).fit(frame)
    before = dict(detector.__dict__)
    scores = detector.decision_function(frame)
    late_nan = np.random.default_rng(1).normal(size=(2100, 4))  # 3 batches of 1024 at fit
    late_nan[2090, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        detector.fit(late_nan)
    assert detector.__dict__.keys() == before.keys()
    assert all(detector.__dict__[k] is v for k, v in before.items())
    assert list(detector.feature_names_in_) == list("abcde") and detector.n_features_in_ == 5
    assert np.array_equal(detector.decision_function(frame), scores)


def test_interrupted_scoring_changes_nothing(monkeypatch, reference_scores):
    detector = MCADDetector(**TINY).fit(X_TAB)
    before = dict(detector.__dict__)
    state_before = global_state()
    interrupt(monkeypatch, skmcad._detector, "frozen_outputs", 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        detector.decision_function(X_TAB)  # 4 batches of 8
    monkeypatch.undo()
    assert all(detector.__dict__[k] is v for k, v in before.items())
    assert_global_state(state_before)
    assert np.array_equal(detector.decision_function(X_TAB), reference_scores)


def test_interrupted_fit_with_a_progress_bar_closes_it(monkeypatch, capsys):
    detector = MCADDetector(**{**TINY, "verbose": 1})
    interrupt(monkeypatch, skmcad.stage1, "stage1_loss", 2, KeyboardInterrupt())
    closed = []
    original_close = skmcad._loop.EpochProgress.close
    monkeypatch.setattr(skmcad._loop.EpochProgress, "close",
                        lambda self: (closed.append(self.stage), original_close(self)))
    with pytest.raises(KeyboardInterrupt):
        detector.fit(X_TAB)
    assert closed == ["stage 1"]
    assert not hasattr(detector, "history_")


def test_clone_of_an_interrupted_estimator_is_a_clean_estimator(monkeypatch):
    detector = MCADDetector(**TINY).fit(X_TAB)
    interrupt(monkeypatch, skmcad.stage2, "stage2_loss", 1, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        detector.fit(X_NEW)
    assert clone(detector).get_params() == MCADDetector(**TINY).get_params()
