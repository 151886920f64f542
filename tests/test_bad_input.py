"""Bad input, at fit and at scoring, gets a ValueError/TypeError naming the problem and
leaves the estimator exactly as it was (SPEC section 3, issue "Reliability")."""

import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from sklearn.base import clone

from skmcad import MCADDetector
from skmcad._detector import MIN_SAMPLES

TINY = dict(stage1_epochs=1, stage2_epochs=1, width=2, memory_size=2, n_scales=2,
            batch_size=16, input_size=32, random_state=0)

_rng = np.random.default_rng(0)
X_TAB = _rng.normal(size=(24, 5))
X_IMG = _rng.random((24, 8, 8)).astype(np.float32)


def _with(X, index, value):
    X = np.array(X, dtype=np.float64)
    X[index] = value
    return X


def _strings(shape):
    return np.full(shape, "a", dtype=object)


# (id, X, expected exception, message pattern)
TABULAR_FIT_CASES = [
    ("nan", _with(X_TAB, (3, 2), np.nan), ValueError, "NaN"),
    ("inf", _with(X_TAB, (3, 2), np.inf), ValueError, "infinity"),
    ("-inf", _with(X_TAB, (0, 0), -np.inf), ValueError, "infinity"),
    ("1-D", X_TAB[:, 0], ValueError, "Expected 2D array, got 1D array"),
    ("0-D", np.float64(1.0), ValueError, "Expected 2D array, got scalar array"),
    ("5-D", np.zeros((6, 2, 2, 2, 2)), ValueError, "5 dimensions"),
    ("empty rows", np.zeros((0, 5)), ValueError, "0 sample"),
    ("empty features", np.zeros((6, 0)), ValueError, "0 feature"),
    ("3 samples", X_TAB[:MIN_SAMPLES - 1], ValueError, f"at least {MIN_SAMPLES} samples"),
    ("1 sample", X_TAB[:1], ValueError, f"at least {MIN_SAMPLES} samples"),
    ("object strings", _strings((6, 5)), ValueError, "could not convert string to float"),
    ("object None", np.full((6, 5), None, dtype=object), ValueError, "NaN"),
    ("str dtype", X_TAB.astype(str), ValueError, "strings"),
    ("bytes dtype", X_TAB.astype(bytes), ValueError, "strings"),
    ("complex", X_TAB.astype(complex), ValueError, "Complex data not supported"),
    ("above float32 range", _with(X_TAB, (1, 1), 1e300), ValueError, "infinity"),
]

IMAGE_FIT_CASES = [
    ("zero-size image axis", np.zeros((6, 0, 8)), ValueError, "empty sample dimension"),
    ("zero channels", np.zeros((6, 8, 8, 0)), ValueError, "empty sample dimension"),
    ("4-D without a channel axis", np.zeros((6, 5, 6, 7)), ValueError, r"\(n, H, W, C\)"),
    ("nan image", _with(X_IMG, (2, 3, 3), np.nan), ValueError, "NaN"),
]

# (id, params, X, expected exception, message pattern)
PARAM_CASES = [
    ("memory_size=-1", dict(memory_size=-1), X_TAB, ValueError, "'memory_size' parameter"),
    ("memory_size=0", dict(memory_size=0), X_TAB, ValueError, "'memory_size' parameter"),
    ("bank_size=0", dict(bank_size=0), X_TAB, ValueError, "'bank_size' parameter"),
    ("bank_size=2.5", dict(bank_size=2.5), X_TAB, ValueError, "'bank_size' parameter"),
    ("bank_coreset='kmeans'", dict(bank_coreset="kmeans"), X_TAB, ValueError,
     "'bank_coreset' parameter"),
    ("stage1_epochs=-1", dict(stage1_epochs=-1), X_TAB, ValueError, "'stage1_epochs' parameter"),
    ("stage2_epochs=-1", dict(stage2_epochs=-1), X_TAB, ValueError,
     "'stage2_epochs' parameter"),
    ("contamination=0", dict(contamination=0.0), X_TAB, ValueError, "'contamination'"),
    ("contamination=0.6", dict(contamination=0.6), X_TAB, ValueError, "'contamination'"),
    ("contamination=-0.1", dict(contamination=-0.1), X_TAB, ValueError, "'contamination'"),
    ("device='tpu'", dict(device="tpu"), X_TAB, ValueError, "unknown device 'tpu'"),
    ("device='mps'", dict(device="mps"), X_TAB, ValueError, "device must be"),
    ("device=3", dict(device=3), X_TAB, TypeError, "'device' parameter"),
    ("memory_size of 3 for 2 scales", dict(memory_size=(2, 2, 2)), X_TAB, ValueError,
     "2 positive ints"),
    ("memory_size of 1 for 2 scales", dict(memory_size=(2,)), X_TAB, ValueError,
     "2 positive ints"),
    ("memory_size with a negative", dict(memory_size=[2, -1]), X_TAB, ValueError,
     "2 positive ints"),
    ("n_scales=6, MLP", dict(n_scales=6), X_TAB, ValueError, "exceeds the 5 stages"),
    ("n_scales=5, ResNet", dict(n_scales=5, backbone="resnet"), X_IMG, ValueError,
     "exceeds the 4 stages"),
    ("n_scales=8, pretrained", dict(n_scales=8), X_IMG, ValueError, "exceeds the 7 stages"),
    ("backbone='mlp' on images", dict(backbone="mlp"), X_IMG, ValueError,
     "'mlp' does not fit image input"),
    ("backbone='resnet' on rows", dict(backbone="resnet"), X_TAB, ValueError,
     "'resnet' does not fit tabular input"),
    ("unknown backbone", dict(backbone="vit"), X_TAB, ValueError, "'backbone' parameter"),
    ("width=0", dict(width=0), X_TAB, ValueError, "'width' parameter"),
    ("batch_size=1", dict(batch_size=1), X_TAB, ValueError, "'batch_size' parameter"),
    ("learning_rate=0", dict(learning_rate=0.0), X_TAB, ValueError, "'learning_rate'"),
    ("learning_rate=1e30 (diverges)", dict(learning_rate=1e30, stage1_epochs=2), X_TAB,
     ValueError, "Training diverged"),
    ("image_shape not matching rows", dict(image_shape=(2, 2)), X_TAB, ValueError,
     r"holds 4 values per image, but the rows of X have 5 features"),
    ("image_shape of 1 axis", dict(image_shape=(5,)), X_TAB, ValueError,
     r"\(H, W\) or \(H, W, C\)"),
    ("image_shape with 2 channels", dict(image_shape=(4, 4, 2)), X_IMG.reshape(24, -1),
     ValueError, r"\(H, W\) or \(H, W, C\)"),
    ("image_shape not integers", dict(image_shape=(2.5, 2)), X_TAB, ValueError,
     "positive integers"),
    ("image_shape a string", dict(image_shape="8x8"), X_TAB, ValueError, "'image_shape'"),
    ("image_shape against 3-D images", dict(image_shape=(4, 16)), X_IMG, ValueError,
     "does not match the images of X"),
    ("unknown setting", dict(setting="supervised"), X_TAB, ValueError, "'setting' parameter"),
]
if not torch.cuda.is_available():
    PARAM_CASES += [
        ("device='cuda' without CUDA", dict(device="cuda"), X_TAB, ValueError,
         "CUDA is not available"),
        ("device='cuda:0' without CUDA", dict(device="cuda:0"), X_TAB, ValueError,
         "CUDA is not available"),
    ]

TABULAR_SCORE_CASES = [
    ("nan", _with(X_TAB[:6], (3, 2), np.nan), ValueError, "NaN"),
    ("inf", _with(X_TAB[:6], (3, 2), np.inf), ValueError, "infinity"),
    ("1-D", X_TAB[:, 0], ValueError, "Expected 2D array, got 1D array"),
    ("0-D", np.float64(1.0), ValueError, "Expected 2D array, got scalar array"),
    ("5-D", np.zeros((6, 5, 1, 1, 1)), ValueError, r"fitted on samples of shape \(5,\)"),
    ("3-D with the fit's 5 values", np.zeros((6, 5, 1)), ValueError,
     r"samples of shape \(5, 1\)"),
    ("other feature count", X_TAB[:, :3], ValueError, "X has 3 features, but MCADDetector "
                                                      "is expecting 5 features"),
    ("empty rows", np.zeros((0, 5)), ValueError, "0 sample"),
    ("empty features", np.zeros((6, 0)), ValueError, "0 feature"),
    ("object strings", _strings((6, 5)), ValueError, "could not convert string to float"),
    ("str dtype", X_TAB[:6].astype(str), ValueError, "strings"),
    ("complex", X_TAB[:6].astype(complex), ValueError, "Complex data not supported"),
    ("finite but overflowing (3e38)", _with(X_TAB[:6], (2, 0), 3e38), ValueError,
     r"too large to score.*rows \[2\]"),
]

IMAGE_SCORE_CASES = [
    ("other image size", X_IMG[:6, :7], ValueError,
     r"samples of shape \(7, 8\).*fitted on samples of shape \(8, 8\)"),
    ("flattened rows", X_IMG[:6].reshape(6, -1), ValueError, r"samples of shape \(64,\)"),
    ("channels added", np.repeat(X_IMG[:6, ..., None], 3, axis=-1), ValueError,
     r"samples of shape \(8, 8, 3\)"),
    ("5-D", X_IMG[:6, None, :, :, None], ValueError, "5-D input"),
    ("zero-size axis", np.zeros((6, 0, 8)), ValueError, "empty sample dimension"),
    ("empty", np.zeros((0, 8, 8)), ValueError, "0 sample"),
    ("nan", _with(X_IMG[:6], (1, 2, 2), np.nan), ValueError, "NaN"),
    ("finite but overflowing (3e38)", _with(X_IMG[:6], (4, 2, 2), 3e38), ValueError,
     r"too large to score.*rows \[4\]"),
    ("strings", _strings((6, 8, 8)), ValueError, "could not convert string to float"),
]

SCORING_METHODS = ["decision_function", "predict", "predict_proba", "predict_confidence"]


@pytest.fixture(scope="module")
def tabular():
    return MCADDetector(**TINY).fit(X_TAB)


@pytest.fixture(scope="module")
def image():
    return MCADDetector(**TINY).fit(X_IMG)


def snapshot(detector, X_ref):
    """What must not change: attributes, parameters, modules and scores."""
    return dict(keys=sorted(detector.__dict__), params=detector.get_params(),
                network=detector.network_, scorer=detector.scorer_,
                weights={k: v.clone() for k, v in detector.network_.state_dict().items()},
                scores=detector.decision_function(X_ref))


def assert_unchanged(detector, before, X_ref):
    after = snapshot(detector, X_ref)
    assert after["keys"] == before["keys"]
    assert after["params"] == before["params"]
    assert after["network"] is before["network"] and after["scorer"] is before["scorer"]
    assert after["weights"].keys() == before["weights"].keys()
    assert all(torch.equal(after["weights"][k], v) for k, v in before["weights"].items())
    assert np.array_equal(after["scores"], before["scores"])


def _fit_quietly(detector, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # numpy's overflow on float32 casts
        return detector.fit(X)


def _ids(cases):
    return [case[0] for case in cases]


@pytest.mark.parametrize("name, X, error, match", TABULAR_FIT_CASES + IMAGE_FIT_CASES,
                         ids=_ids(TABULAR_FIT_CASES + IMAGE_FIT_CASES))
def test_bad_fit_input_is_refused_and_changes_nothing(tabular, name, X, error, match):
    fresh = clone(tabular)
    with pytest.raises(error, match=match):
        _fit_quietly(fresh, X)
    assert [k for k in fresh.__dict__ if k.endswith("_")] == []
    assert sorted(fresh.__dict__) == sorted(clone(tabular).__dict__)

    before = snapshot(tabular, X_TAB)
    with pytest.raises(error, match=match):
        _fit_quietly(tabular, X)
    assert_unchanged(tabular, before, X_TAB)


@pytest.mark.parametrize("name, params, X, error, match", PARAM_CASES, ids=_ids(PARAM_CASES))
def test_invalid_parameters_are_refused_at_fit(tabular, name, params, X, error, match):
    fresh = MCADDetector(**{**TINY, **params})  # __init__ stores, never validates
    with pytest.raises(error, match=match):
        _fit_quietly(fresh, X)
    assert [k for k in fresh.__dict__ if k.endswith("_")] == []

    before = snapshot(tabular, X_TAB)
    original = tabular.get_params()
    tabular.set_params(**params)
    try:
        with pytest.raises(error, match=match):
            _fit_quietly(tabular, X)
    finally:
        tabular.set_params(**original)
    assert_unchanged(tabular, before, X_TAB)


def _assert_scoring_refused(detector, X_good, method, X, error, match):
    """``method(X)`` raises ``error`` and leaves the fitted ``detector`` unchanged."""
    before = snapshot(detector, X_good)
    with pytest.raises(error, match=match), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        getattr(detector, method)(X)
    assert_unchanged(detector, before, X_good)


@pytest.mark.parametrize("method", SCORING_METHODS)
@pytest.mark.parametrize("name, X, error, match", TABULAR_SCORE_CASES,
                         ids=_ids(TABULAR_SCORE_CASES))
def test_bad_scoring_input_on_tabular_detector(tabular, method, name, X, error, match):
    _assert_scoring_refused(tabular, X_TAB, method, X, error, match)


@pytest.mark.parametrize("method", SCORING_METHODS + ["anomaly_map"])
@pytest.mark.parametrize("name, X, error, match", IMAGE_SCORE_CASES,
                         ids=_ids(IMAGE_SCORE_CASES))
def test_bad_scoring_input_on_image_detector(image, method, name, X, error, match):
    _assert_scoring_refused(image, X_IMG, method, X, error, match)


def test_anomaly_map_of_a_tabular_detector_is_refused(tabular):
    before = snapshot(tabular, X_TAB)
    with pytest.raises(ValueError, match="anomaly_map needs images"):
        tabular.anomaly_map(X_TAB)
    assert_unchanged(tabular, before, X_TAB)


def test_unfitted_detector_refuses_to_score():
    from sklearn.exceptions import NotFittedError

    for method in SCORING_METHODS + ["anomaly_map"]:
        with pytest.raises(NotFittedError):
            getattr(MCADDetector(**TINY), method)(X_TAB)


@pytest.mark.parametrize("X", [X_TAB.astype(np.float16), X_TAB.astype(np.float32),
                               (X_TAB > 0), (X_TAB * 10).astype(np.int64),
                               X_TAB.astype(object), X_TAB.tolist()],
                         ids=["float16", "float32", "bool", "int64", "object floats", "list"])
def test_every_numeric_dtype_scores(tabular, X):
    scores = tabular.decision_function(X)
    assert scores.dtype == np.float64 and scores.shape == (len(X_TAB),)
    assert np.isfinite(scores).all()


# -- property-based: anything thrown at fit or at scoring --------------------------------------

DTYPES = ["float16", "float32", "float64", "int64", "uint8", "bool", "object", "str", "complex"]
SPECIAL = [0.0, 1.0, -1.0, np.nan, np.inf, -np.inf, 65504.0, 1e5, 1e36, 3e38, -3.4e38, 1e300]


# sample shapes the detectors of the scoring test were fitted on, drawn half of the time so
# that scoring gets past shape checks to the values
FITTED_SAMPLE_SHAPES = [(3,), (6, 6), (3, 5, 4)]


@st.composite
def arbitrary_arrays(draw):
    n_samples = st.sampled_from([0, 1, MIN_SAMPLES - 1, MIN_SAMPLES, 9])
    if draw(st.booleans()):
        shape = (draw(n_samples),) + draw(st.sampled_from(FITTED_SAMPLE_SHAPES))
    else:
        ndim = draw(st.integers(0, 5))
        n = [draw(n_samples)] if ndim else []
        shape = tuple(n + [draw(st.integers(0, 6)) for _ in range(max(ndim - 1, 0))])
    values = draw(hnp.arrays(np.float64, shape, elements=st.one_of(
        st.floats(-3, 3), st.sampled_from(SPECIAL), st.floats())))
    dtype = draw(st.sampled_from(DTYPES))
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        if dtype == "str":
            return values.astype(str)
        if dtype == "object":
            X = values.astype(object)
            if X.size and draw(st.booleans()):
                X.flat[draw(st.integers(0, X.size - 1))] = "a"
            return X
        return values.astype(dtype)


def assert_refused_or_finite(function, X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            scores = function(X)
    except (ValueError, TypeError):
        return
    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    assert scores.shape == (len(X),)
    assert np.isfinite(scores).all()


HYPOTHESIS = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture,
                                             HealthCheck.too_slow])
HYPOTHESIS_TINY = dict(stage1_epochs=1, stage2_epochs=1, width=2, memory_size=2, n_scales=2,
                       batch_size=8, input_size=32, random_state=0)


@HYPOTHESIS
@given(X=arbitrary_arrays())
def test_fit_on_anything_raises_a_clear_error_or_gives_finite_scores(X):
    detector = MCADDetector(**HYPOTHESIS_TINY)
    try:
        _fit_quietly(detector, X)
    except (ValueError, TypeError):
        assert [k for k in detector.__dict__ if k.endswith("_")] == []
        return
    assert_refused_or_finite(lambda X: detector.decision_scores_, X)
    assert_refused_or_finite(detector.decision_function, X)


@pytest.fixture(scope="module")
def hypothesis_detectors():
    rng = np.random.default_rng(1)
    return [MCADDetector(**HYPOTHESIS_TINY).fit(rng.normal(size=(12, 3))),
            MCADDetector(**HYPOTHESIS_TINY).fit(rng.random((12, 6, 6))),
            MCADDetector(**HYPOTHESIS_TINY).fit(rng.random((12, 3, 5, 4)))]


@HYPOTHESIS
@given(X=arbitrary_arrays())
def test_scoring_anything_raises_a_clear_error_or_gives_finite_scores(hypothesis_detectors, X):
    for detector in hypothesis_detectors:
        assert_refused_or_finite(detector.decision_function, X)
