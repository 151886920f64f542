"""The anomaly-detection protocols' splits built on a labelled data set."""

import numbers

import numpy as np


def _check_labels(X, y, what):
    y = np.asarray(y)
    if y.ndim != 1 or len(y) != len(X):
        raise ValueError(f"{what}: y of shape {y.shape} does not match {len(X)} samples.")
    return y


def _class_indices(y, normal_class):
    normal = np.flatnonzero(y == normal_class)
    if normal.size == 0:
        raise ValueError(f"normal_class={normal_class!r} has no training sample.")
    return normal, np.flatnonzero(y != normal_class)


def one_class_split(X_train, y_train, X_test, y_test, normal_class):
    """Build the one-class (one-vs-rest) protocol from a labelled train/test split.

    Parameters
    ----------
    X_train : array-like of shape (n_train, ...)
    y_train : array-like of shape (n_train,)
    X_test : array-like of shape (n_test, ...)
    y_test : array-like of shape (n_test,)
    normal_class : scalar
        The class taken as normal.

    Returns
    -------
    X_fit : ndarray of shape (n_normal_train, ...)
        The training samples of ``normal_class`` only.
    X_eval : ndarray of shape (n_test, ...)
        The whole test split.
    y_eval : ndarray of shape (n_test,), dtype int64
        0 where the test label is ``normal_class``, 1 (anomaly) elsewhere.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6).reshape(6, 1); y = np.array([0, 1, 0, 1, 2, 0])
    >>> X_fit, X_eval, y_eval = one_class_split(X, y, X, y, normal_class=0)
    >>> X_fit.ravel().tolist(), y_eval.tolist()
    ([0, 2, 5], [0, 1, 0, 1, 1, 0])
    """
    X_train, X_test = np.asarray(X_train), np.asarray(X_test)
    y_train = _check_labels(X_train, y_train, "train split")
    y_test = _check_labels(X_test, y_test, "test split")
    normal, _ = _class_indices(y_train, normal_class)
    return X_train[normal], X_test, (y_test != normal_class).astype(np.int64)


def unbalanced_split(X_train, y_train, normal_class, anomaly_ratio, random_state=None):
    """Build the unbalanced protocol's training set: normal data plus a few labelled anomalies.

    All training samples of ``normal_class`` are kept, and anomalies are drawn without
    replacement from the other classes so that they make up ``anomaly_ratio`` of the result
    (``round(anomaly_ratio * n_normal / (1 - anomaly_ratio))``, at least 1).

    Parameters
    ----------
    X_train : array-like of shape (n_train, ...)
    y_train : array-like of shape (n_train,)
    normal_class : scalar
        The class taken as normal.
    anomaly_ratio : float in (0, 0.5]
        Fraction of labelled anomalies in the returned set.
    random_state : int, numpy.random.Generator or None, default=None
        Seed of the local generator ``np.random.default_rng(random_state)``.

    Returns
    -------
    X_fit : ndarray of shape (n_normal + n_anomalies, ...)
        Shuffled samples.
    y_fit : ndarray of shape (n_normal + n_anomalies,), dtype int64
        1 for the labelled anomalies, 0 for the normal samples.

    Raises
    ------
    ValueError
        ``anomaly_ratio`` outside (0, 0.5], or fewer samples of the other classes than needed.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(60).reshape(30, 2); y = np.repeat([0, 1], [16, 14])
    >>> X_fit, y_fit = unbalanced_split(X, y, normal_class=0, anomaly_ratio=0.2, random_state=0)
    >>> X_fit.shape, int(y_fit.sum())
    ((20, 2), 4)
    """
    if (
        isinstance(anomaly_ratio, bool)
        or not isinstance(anomaly_ratio, numbers.Real)
        or not 0 < anomaly_ratio <= 0.5
    ):
        raise ValueError(f"anomaly_ratio must be a float in (0, 0.5]; got {anomaly_ratio!r}.")
    X_train = np.asarray(X_train)
    y_train = _check_labels(X_train, y_train, "train split")
    normal, others = _class_indices(y_train, normal_class)
    n_anomalies = max(1, round(anomaly_ratio * normal.size / (1 - anomaly_ratio)))
    if n_anomalies > others.size:
        raise ValueError(
            f"anomaly_ratio={anomaly_ratio} needs {n_anomalies} anomalies but the other classes "
            f"have only {others.size} training samples."
        )
    rng = np.random.default_rng(random_state)
    indices = np.concatenate([normal, rng.choice(others, n_anomalies, replace=False)])
    rng.shuffle(indices)
    return X_train[indices], (y_train[indices] != normal_class).astype(np.int64)
