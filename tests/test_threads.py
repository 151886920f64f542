import os

import joblib
import numpy as np
import pytest
import torch

import skmcad._detector
from skmcad import MCADDetector
from skmcad.threads import n_threads, torch_threads

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
TABULAR = dict(memory_size=4, n_scales=2, width=2, stage1_epochs=2, stage2_epochs=1,
               random_state=0)


@pytest.fixture
def two_threads_outside():
    """Torch's process-wide count set to 2 around the test (the suite runs with 1)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_n_jobs_follows_scikit_learn_conventions():
    assert n_threads(None) == 1
    assert n_threads(1) == 1
    assert n_threads(-1) == CORES
    assert n_threads(10 ** 6) == CORES  # never more threads than cores
    with joblib.parallel_backend("threading", n_jobs=2):
        assert n_threads(None) == 1  # the workers of a parallel search: one thread each
        assert n_threads(-1) == CORES


def test_block_sets_the_count_and_restores_it_even_on_error(two_threads_outside):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
        with torch_threads(-1):  # nested: restores the outer block's count
            assert torch.get_num_threads() == CORES
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2
    with pytest.raises(RuntimeError), torch_threads(1):
        raise RuntimeError
    assert torch.get_num_threads() == 2


def test_fit_and_scoring_run_with_n_jobs_threads_and_leave_the_global_count(
        two_threads_outside, monkeypatch):
    seen = []

    def recording(name, step):
        def wrapper(*args, **kwargs):
            seen.append((name, torch.get_num_threads()))
            return step(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(skmcad._detector, "train_stage1",
                        recording("fit", skmcad._detector.train_stage1))
    monkeypatch.setattr(skmcad._detector, "frozen_outputs",
                        recording("score", skmcad._detector.frozen_outputs))
    X = np.random.default_rng(0).normal(size=(60, 3))
    det = MCADDetector(n_jobs=1, **TABULAR).fit(X)
    assert seen[0] == ("fit", 1) and torch.get_num_threads() == 2
    seen.clear()
    det.decision_function(X)
    det.set_params(n_jobs=-1).predict_proba(X)
    assert seen == [("score", 1), ("score", CORES)] and torch.get_num_threads() == 2


def test_failed_fit_restores_the_global_count(two_threads_outside):
    with pytest.raises(ValueError):
        MCADDetector(n_jobs=1, **TABULAR).fit(np.zeros((2, 3)))  # too few samples
    assert torch.get_num_threads() == 2


def test_scores_do_not_depend_on_the_thread_count():
    X = np.random.default_rng(0).normal(size=(60, 3))
    one = MCADDetector(n_jobs=1, **TABULAR).fit(X)
    every = MCADDetector(n_jobs=-1, **TABULAR).fit(X)
    assert np.allclose(one.decision_function(X), every.decision_function(X), atol=1e-8)
