"""The same ``random_state`` gives identical scores, in one process and across processes;
global random states are never touched (issue "Reliability", SPEC section 2)."""

import os
import random
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skmcad import MCADDetector

TINY = dict(stage1_epochs=2, stage2_epochs=1, width=2, memory_size=3, n_scales=2, batch_size=16,
            input_size=32, random_state=0)
THREADS = 1  # float32 image scores may differ in the last bits between thread counts


def tabular_data():
    return np.random.default_rng(0).normal(size=(48, 6))


def image_data():
    return np.random.default_rng(0).random((32, 8, 8, 3)).astype(np.float32)


X_TAB, X_IMG = tabular_data(), image_data()


@pytest.fixture(scope="module")
def fitted_tabular():
    return MCADDetector(**TINY).fit(X_TAB)


@pytest.fixture(scope="module")
def fitted_image():
    return MCADDetector(**TINY).fit(X_IMG)


def global_state():
    return np.random.get_state(), random.getstate(), torch.get_rng_state()


def assert_global_state_unchanged(before):
    numpy_state, python_state, torch_state = global_state()
    assert numpy_state[0] == before[0][0] and np.array_equal(numpy_state[1], before[0][1])
    assert numpy_state[2:] == before[0][2:]
    assert python_state == before[1]
    assert torch.equal(torch_state, before[2])


def test_same_seed_same_tabular_scores_other_seed_other_scores(fitted_tabular):
    first = fitted_tabular.decision_function(X_TAB)
    second = MCADDetector(**TINY).fit(X_TAB).decision_function(X_TAB)
    other = MCADDetector(**{**TINY, "random_state": 1}).fit(X_TAB).decision_function(X_TAB)
    assert np.array_equal(first, second)
    assert np.array_equal(fitted_tabular.decision_scores_, first)
    assert not np.allclose(first, other)


def test_refit_of_the_same_estimator_gives_the_same_scores(fitted_tabular):
    detector = clone(fitted_tabular).fit(X_TAB)
    first = detector.decision_function(X_TAB)
    assert np.array_equal(detector.fit(X_TAB).decision_function(X_TAB), first)


def test_scoring_is_deterministic_and_independent_of_batching(fitted_tabular):
    scores = fitted_tabular.decision_function(X_TAB)
    assert np.array_equal(fitted_tabular.decision_function(X_TAB), scores)
    one_by_one = np.concatenate([fitted_tabular.decision_function(X_TAB[i:i + 1])
                                 for i in range(len(X_TAB))])
    # float64 tabular networks: equal up to the summation order of matrix products (BLAS
    # takes other paths for one row than for many), far below any score difference
    np.testing.assert_allclose(one_by_one, scores, rtol=0, atol=1e-12)


_CHILD = textwrap.dedent("""
    import sys
    import numpy as np
    import torch
    torch.set_num_threads({threads})
    sys.path.insert(0, {tests!r})
    from test_reproducibility import TINY, image_data, tabular_data
    from skmcad import MCADDetector
    for path, data in [({tab_path!r}, tabular_data()), ({img_path!r}, image_data())]:
        np.save(path, MCADDetector(**TINY).fit(data).decision_function(data))
""")


def test_same_seed_same_scores_in_another_process(fitted_tabular, fitted_image, tmp_path):
    tab_path, img_path = str(tmp_path / "tabular.npy"), str(tmp_path / "image.npy")
    code = _CHILD.format(threads=THREADS, tests=os.path.dirname(__file__), tab_path=tab_path,
                         img_path=img_path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert np.array_equal(np.load(tab_path), fitted_tabular.decision_function(X_TAB))
    assert np.array_equal(np.load(img_path), fitted_image.decision_function(X_IMG))


@pytest.mark.parametrize("random_state", [None, 0, np.random.RandomState(0)],
                         ids=["None", "int", "RandomState"])
def test_fit_and_scoring_leave_global_random_states_untouched(random_state):
    before = global_state()
    detector = MCADDetector(**{**TINY, "random_state": random_state}).fit(X_TAB)
    assert_global_state_unchanged(before)
    detector.decision_function(X_TAB)
    detector.predict(X_TAB)
    detector.predict_proba(X_TAB)
    detector.predict_confidence(X_TAB)
    assert_global_state_unchanged(before)


def test_global_random_state_untouched_by_image_scoring_and_maps(fitted_image):
    before = global_state()
    fitted_image.decision_function(X_IMG)
    fitted_image.predict(X_IMG)
    fitted_image.anomaly_map(X_IMG[:4])
    assert_global_state_unchanged(before)


def test_global_seeds_do_not_change_seeded_results(fitted_tabular):
    before = global_state()
    try:
        np.random.seed(123), random.seed(123), torch.manual_seed(123)
        assert np.array_equal(MCADDetector(**TINY).fit(X_TAB).decision_function(X_TAB),
                              fitted_tabular.decision_function(X_TAB))
    finally:
        np.random.set_state(before[0]), random.setstate(before[1])
        torch.set_rng_state(before[2])


def test_random_state_none_gives_different_fits():
    first = MCADDetector(**{**TINY, "random_state": None}).fit(X_TAB).decision_function(X_TAB)
    second = MCADDetector(**{**TINY, "random_state": None}).fit(X_TAB).decision_function(X_TAB)
    assert not np.array_equal(first, second)


def test_random_state_instance_is_used_and_advanced_like_in_scikit_learn():
    first = MCADDetector(**{**TINY, "random_state": np.random.RandomState(7)}).fit(X_TAB)
    second = MCADDetector(**{**TINY, "random_state": np.random.RandomState(7)}).fit(X_TAB)
    assert np.array_equal(first.decision_function(X_TAB), second.decision_function(X_TAB))

    shared = np.random.RandomState(7)
    detector = MCADDetector(**{**TINY, "random_state": shared})
    scores = detector.fit(X_TAB).decision_function(X_TAB)
    assert np.array_equal(scores, first.decision_function(X_TAB))
    # the instance was drawn from, so a refit with it is another (still valid) fit
    refit = detector.fit(X_TAB).decision_function(X_TAB)
    assert np.isfinite(refit).all() and not np.array_equal(refit, scores)
