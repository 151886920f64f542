"""scikit-learn's bundled 8x8 digits as images."""

import numpy as np


def load_digits_images():
    """Load scikit-learn's bundled 8x8 digits as images in [0, 1].

    Returns
    -------
    X : ndarray of shape (1797, 8, 8), dtype float32
        Grey images, pixel values divided by 16.
    y : ndarray of shape (1797,), dtype int64
        Digit labels 0-9.

    Examples
    --------
    >>> X, y = load_digits_images()
    >>> float(X.max()), y.dtype.name
    (1.0, 'int64')
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.images / 16.0).astype(np.float32)
    return X, digits.target.astype(np.int64)
