import numpy as np
import pytest

from skmcad import MCADDetector
from skmcad.inputs import Standardizer, infer_layout, iter_batches


@pytest.fixture
def image_hwc():
    rng = np.random.default_rng(0)
    return rng.random((6, 5, 6, 3)).astype(np.float32)  # (n, H, W, C)


def test_tabular_layout_keeps_rows():
    X = np.arange(12, dtype=np.float64).reshape(4, 3)
    layout = infer_layout(X)
    assert layout.kind == "tabular"
    assert np.array_equal(layout.to_batch(X), X.astype(np.float32))


@pytest.mark.parametrize("transform, image_shape", [
    (lambda x: x, None),  # channels-last
    (lambda x: x.transpose(0, 3, 1, 2), None),  # channels-first
    (lambda x: x.reshape(len(x), -1), (5, 6, 3)),  # flattened rows + image_shape
])
def test_every_image_layout_gives_the_same_nchw_batch(image_hwc, transform, image_shape):
    layout = infer_layout(transform(image_hwc), image_shape)
    batch = layout.to_batch(transform(image_hwc))
    assert layout.image_size == (3, 5, 6)
    assert np.array_equal(batch, image_hwc.transpose(0, 3, 1, 2))


def test_grey_images_get_one_channel():
    X = np.random.default_rng(0).random((3, 7, 6))
    layout = infer_layout(X)
    assert layout.to_batch(X).shape == (3, 1, 7, 6)


def test_uint8_is_scaled_to_unit_range():
    X = np.array([[[0, 255], [51, 102]]], dtype=np.uint8)
    batch = infer_layout(X).to_batch(X)
    assert batch.dtype == np.float32
    assert np.allclose(batch[0, 0], [[0.0, 1.0], [0.2, 0.4]])


def test_bad_layouts_raise_value_errors():
    with pytest.raises(ValueError, match="holds 12 values per image"):
        infer_layout(np.zeros((2, 10)), image_shape=(2, 2, 3))
    with pytest.raises(ValueError, match="C in"):
        infer_layout(np.zeros((2, 12)), image_shape=(2, 3, 2))
    with pytest.raises(ValueError, match=r"\(n, H, W, C\) or \(n, C, H, W\)"):
        infer_layout(np.zeros((2, 5, 6, 7)))
    with pytest.raises(ValueError, match="dimensions"):
        infer_layout(np.zeros((2, 3, 3, 3, 3)))


def test_nan_in_a_batch_is_refused():
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        list(iter_batches(X, infer_layout(X), 2))


def test_standardizer_from_batches_equals_whole_array_statistics():
    rng = np.random.default_rng(0)
    X = rng.normal(3.0, 2.0, size=(50, 2, 4, 4)).astype(np.float32)
    X[:, 1] = 7.0  # a constant channel keeps std 1, not 0
    standardizer = Standardizer.from_batches(np.array_split(X, 7))
    assert np.allclose(standardizer.mean, X.mean(axis=(0, 2, 3)), atol=1e-5)
    assert np.allclose(standardizer.std[0], X[:, 0].std(), atol=1e-5)
    assert standardizer.std[1] == 1.0
    assert np.allclose(standardizer.transform(X)[:, 0].mean(), 0.0, atol=1e-5)


@pytest.mark.parametrize("make_input, kwargs", [
    (lambda x: x.reshape(len(x), -1), {}),  # tabular
    (lambda x: x, {}),  # grey (n, H, W)
    (lambda x: np.repeat(x[..., None], 3, axis=-1), {}),  # (n, H, W, C)
    (lambda x: np.repeat(x[:, None], 3, axis=1), {}),  # (n, C, H, W)
    (lambda x: x.reshape(len(x), -1), {"image_shape": (8, 8)}),  # flattened images
    (lambda x: (x * 255).astype(np.uint8), {}),  # uint8 grey
])
def test_detector_fits_and_scores_every_input_layout(digits, tiny_params, make_input, kwargs):
    images, _ = digits
    X = make_input(images[:40])
    det = MCADDetector(**tiny_params, **kwargs).fit(X)
    scores = det.decision_function(make_input(images[40:50]))
    assert scores.shape == (10,) and scores.dtype == np.float64
    assert np.isfinite(scores).all()
    expected_kind = "tabular" if X.ndim == 2 and "image_shape" not in kwargs else "image"
    assert det.layout_.kind == expected_kind
