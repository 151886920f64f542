"""Input layouts: tabular rows and images in every supported layout, read in batches.

An :class:`InputLayout` is learned from the training array at ``fit``; it turns any slice of
an array with the same layout into a float32 batch for the networks, ``(B, d)`` for tabular
data and ``(B, C, H, W)`` for images. Arrays are only ever read a batch at a time, so memmaps
are never copied whole.
"""

from dataclasses import dataclass

import numpy as np
from sklearn.utils import assert_all_finite, check_array
from sklearn.utils.validation import column_or_1d

CHANNEL_COUNTS = (1, 3, 4)


@dataclass(frozen=True)
class InputLayout:
    """How the rows of an input array map to network inputs.

    Parameters
    ----------
    kind : {"tabular", "image"}
    sample_shape : tuple of int
        Shape of one sample as given by the user (``X.shape[1:]``).
    order : {"features", "hw", "hwc", "chw"}
        Axis order of one sample; ``"hwc"`` also covers flattened rows read with
        ``image_shape``.
    image_size : tuple of int or None
        ``(C, H, W)`` of the network input for images.
    """

    kind: str
    sample_shape: tuple
    order: str
    image_size: tuple = None

    @property
    def n_features(self):
        return int(np.prod(self.sample_shape))

    @property
    def image_side(self):
        """Shorter side of the images, in pixels; None for tabular data."""
        return None if self.image_size is None else int(min(self.image_size[1:]))

    def to_batch(self, X_part):
        """Return a float32 ``(B, d)`` or ``(B, C, H, W)`` copy of a slice, scaled and checked.

        uint8 data is scaled by 1/255 (images stored as bytes); NaN and infinity raise
        ``ValueError`` here, batch by batch, so a large memmap is never scanned whole at once.
        """
        batch = np.asarray(X_part)
        scale = 1.0 / 255.0 if batch.dtype == np.uint8 else None
        batch = batch.astype(np.float32)  # always a copy: read-only memmaps stay untouched
        if scale is not None:
            batch *= scale
        assert_all_finite(batch, input_name="X")
        if self.kind == "tabular":
            return batch.reshape(len(batch), -1)
        channels, height, width = self.image_size
        if self.order == "chw":
            return batch.reshape(len(batch), channels, height, width)
        batch = batch.reshape(len(batch), height, width, channels)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def infer_layout(X, image_shape=None):
    """Learn the :class:`InputLayout` of a validated training array.

    Parameters
    ----------
    X : ndarray of shape (n, d), (n, H, W), (n, H, W, C) or (n, C, H, W)
    image_shape : tuple of int, optional
        ``(H, W)`` or ``(H, W, C)``: read 2-D rows as flattened channels-last images.

    Returns
    -------
    InputLayout
    """
    sample_shape = tuple(int(s) for s in X.shape[1:])
    if X.ndim == 2:
        if image_shape is None:
            return InputLayout("tabular", sample_shape, "features")
        return _flattened_image_layout(sample_shape, image_shape)
    if X.ndim == 3:
        height, width = sample_shape
        return InputLayout("image", sample_shape, "hw", (1, height, width))
    if X.ndim == 4:
        return _four_d_layout(sample_shape)
    raise ValueError(
        f"X must be 2-D (tabular or flattened images), 3-D (n, H, W) or 4-D images; "
        f"got an array with {X.ndim} dimensions and shape {X.shape}."
    )


def _flattened_image_layout(sample_shape, image_shape):
    shape = tuple(int(s) for s in image_shape)
    if len(shape) == 2:
        shape = shape + (1,)
    if len(shape) != 3 or shape[2] not in CHANNEL_COUNTS or min(shape) < 1:
        raise ValueError(
            f"image_shape must be (H, W) or (H, W, C) with C in {CHANNEL_COUNTS}; got {image_shape}."
        )
    if int(np.prod(shape)) != sample_shape[0]:
        raise ValueError(
            f"image_shape {tuple(image_shape)} holds {int(np.prod(shape))} values per image, "
            f"but the rows of X have {sample_shape[0]} features."
        )
    height, width, channels = shape
    return InputLayout("image", sample_shape, "hwc", (channels, height, width))


def _four_d_layout(sample_shape):
    # numpy/PIL put channels last; a channel count in both places, (n, 3, 3, 3) say,
    # is read the numpy way.
    if sample_shape[2] in CHANNEL_COUNTS:
        height, width, channels = sample_shape
        return InputLayout("image", sample_shape, "hwc", (channels, height, width))
    if sample_shape[0] in CHANNEL_COUNTS:
        channels, height, width = sample_shape
        return InputLayout("image", sample_shape, "chw", (channels, height, width))
    raise ValueError(
        f"4-D images must be (n, H, W, C) or (n, C, H, W) with C in {CHANNEL_COUNTS}; "
        f"got samples of shape {sample_shape}."
    )


def check_same_layout(layout, X, image_shape=None):
    """Raise ``ValueError`` unless ``X`` has the layout learned at fit."""
    sample_shape = tuple(int(s) for s in X.shape[1:])
    if sample_shape == layout.sample_shape:
        return
    if layout.kind == "tabular" or X.ndim == 2:
        raise ValueError(
            f"X has {int(np.prod(sample_shape))} features, but MCADDetector is expecting "
            f"{layout.n_features} features as input."
        )
    raise ValueError(
        f"X holds samples of shape {sample_shape}, but MCADDetector was fitted on samples of "
        f"shape {layout.sample_shape}."
    )


def iter_batches(X, layout, batch_size):
    """Yield float32 network batches of at most ``batch_size`` samples."""
    for start in range(0, len(X), batch_size):
        yield layout.to_batch(X[start:start + batch_size])


class Standardizer:
    """Per-feature (tabular) or per-channel (images) mean and standard deviation.

    Statistics are accumulated in float64 over batches, so fitting never needs the whole
    array as float64.
    """

    def __init__(self, mean, std):
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)

    @classmethod
    def from_batches(cls, batches):
        total, total_sq, count = 0.0, 0.0, 0
        for batch in batches:
            axes = (0,) if batch.ndim == 2 else (0, 2, 3)
            batch64 = batch.astype(np.float64)
            total = total + batch64.sum(axis=axes)
            total_sq = total_sq + (batch64 ** 2).sum(axis=axes)
            count += batch.size // batch.shape[1]
        mean = total / count
        std = np.sqrt(np.maximum(total_sq / count - mean ** 2, 0.0))
        # constant features or channels carry no information; keep them at zero, not inf
        std = np.where(std > 1e-8, std, 1.0)
        return cls(mean, std)

    def transform(self, batch):
        shape = (1, -1) if batch.ndim == 2 else (1, -1, 1, 1)
        return (batch - self.mean.reshape(shape)) / self.std.reshape(shape)


def check_binary_labels(y, n_samples, anomaly="anomaly"):
    """``y`` as 0/1 int64 labels (PyOD's: 0 normal, 1 ``anomaly``), one per sample; a
    ``ValueError`` names what is wrong otherwise."""
    y = column_or_1d(check_array(y, ensure_2d=False, dtype=None, ensure_all_finite=False),
                     warn=True)
    if len(y) != n_samples:
        raise ValueError(f"y has {len(y)} labels but X has {n_samples} samples.")
    values = set(np.unique(y).tolist()) if y.dtype != object else set(y.tolist())
    if not values <= {0, 1}:
        raise ValueError(f"y must hold 0 (normal) and 1 ({anomaly}) only; "
                         f"got the values {sorted(values, key=str)[:10]}.")
    return y.astype(np.int64)
