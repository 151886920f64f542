"""Cross-validation for anomaly detectors.

A one-class detector must be trained on normal data; scikit-learn's splitters hand it every
sample of the training fold, anomalies included. :class:`NormalTrainSplit` keeps the test
folds labelled (stratified, so each holds normal samples and anomalies, as ``roc_auc`` and
``average_precision`` need) and the training folds normal.
"""

from numbers import Integral, Real

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.utils import check_random_state

from .inputs import check_binary_labels

__all__ = ["NormalTrainSplit"]


class NormalTrainSplit:
    """K-fold splitter whose training indices hold only the normal samples of their fold.

    The samples are split into ``n_splits`` folds stratified on ``y`` (PyOD's labels: 0 normal,
    1 anomaly). Each fold in turn is the test set, with all its samples, normal or not; the
    training set is the normal samples of the other folds, plus, for the unbalanced setting,
    ``n_train_anomalies`` of their anomalies (labelled anomalies the detector may use, as
    ``MCADDetector(setting="unbalanced")`` does through ``y``). Works wherever scikit-learn
    takes a ``cv``: ``GridSearchCV``, ``RandomizedSearchCV``, ``cross_val_score``,
    ``cross_validate``.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds, at least 2.
    shuffle : bool, default=False
        Shuffle each class before splitting into folds.
    random_state : int, RandomState instance or None, default=None
        Used when ``shuffle`` is True, and to draw the kept training anomalies when only some
        are kept; pass an int for the same folds at every call.
    n_train_anomalies : int or float, default=0
        Anomalies kept in each training set. An int is a count (at most the anomalies of the
        training folds); a float in (0, 1] a fraction of those anomalies. 0 gives one-class
        training sets.

    Examples
    --------
    >>> import numpy as np
    >>> from skmcad.model_selection import NormalTrainSplit
    >>> y = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1])
    >>> for train, test in NormalTrainSplit(n_splits=3).split(np.zeros((9, 1)), y):
    ...     print(train, test)
    [2 3 4 5] [0 1 6]
    [0 1 4 5] [2 3 7]
    [0 1 2 3] [4 5 8]
    >>> cv = NormalTrainSplit(n_splits=3, n_train_anomalies=1)
    >>> [int(y[train].sum()) for train, _ in cv.split(np.zeros((9, 1)), y)]
    [1, 1, 1]
    """

    def __init__(self, n_splits=5, *, shuffle=False, random_state=None, n_train_anomalies=0):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state
        self.n_train_anomalies = n_train_anomalies

    def split(self, X, y, groups=None):
        """Generate ``(train, test)`` index arrays.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Only its length is read.
        y : array-like of shape (n_samples,)
            0 for normal samples, 1 for anomalies (booleans are taken as such).
        groups : ignored

        Yields
        ------
        train : ndarray
            Normal samples of the training folds, then the kept anomalies, sorted.
        test : ndarray
            Every sample of the test fold, sorted.
        """
        self._check_params()
        labels = _check_binary_labels(y, _num_samples(X))
        n_anomalies = int(labels.sum())
        n_normal = len(labels) - n_anomalies
        if min(n_normal, n_anomalies) < self.n_splits:
            raise ValueError(
                f"NormalTrainSplit(n_splits={self.n_splits}) needs at least {self.n_splits} "
                f"normal samples and {self.n_splits} anomalies, so that every test fold holds "
                f"both; y has {n_normal} normal samples (0) and {n_anomalies} anomalies (1).")
        rng = check_random_state(self.random_state)
        folds = StratifiedKFold(self.n_splits, shuffle=self.shuffle,
                                random_state=rng if self.shuffle else None)
        for train, test in folds.split(np.zeros((len(labels), 1)), labels):
            normal = train[labels[train] == 0]
            anomalies = train[labels[train] == 1]
            n_kept = self._n_kept(len(anomalies))
            kept = (anomalies[:n_kept] if n_kept in (0, len(anomalies))
                    else rng.choice(anomalies, n_kept, replace=False))
            yield np.sort(np.concatenate([normal, kept])), test

    def get_n_splits(self, X=None, y=None, groups=None):
        """Number of splits, ``n_splits``."""
        return self.n_splits

    def _n_kept(self, n_anomalies):
        if isinstance(self.n_train_anomalies, Integral):
            return min(int(self.n_train_anomalies), n_anomalies)
        return int(round(self.n_train_anomalies * n_anomalies))

    def _check_params(self):
        if (not isinstance(self.n_splits, Integral) or isinstance(self.n_splits, bool)
                or self.n_splits < 2):
            raise ValueError(f"n_splits must be an integer of at least 2; got {self.n_splits!r}.")
        kept = self.n_train_anomalies
        valid = (isinstance(kept, Integral) and not isinstance(kept, bool) and kept >= 0) or (
            isinstance(kept, Real) and not isinstance(kept, Integral) and 0 < kept <= 1)
        if not valid:
            raise ValueError(f"n_train_anomalies must be an int >= 0 or a float in (0, 1]; "
                             f"got {kept!r}.")

    def __repr__(self):
        params = ", ".join(f"{name}={getattr(self, name)!r}" for name in
                           ("n_splits", "shuffle", "random_state", "n_train_anomalies"))
        return f"{type(self).__name__}({params})"


def _num_samples(X):
    if hasattr(X, "shape") and len(X.shape) > 0:
        return int(X.shape[0])
    return len(X)


def _check_binary_labels(y, n_samples):
    if y is None:
        raise ValueError("NormalTrainSplit needs y (0 normal, 1 anomaly) to keep the anomalies "
                         "out of the training folds; got y=None.")
    return check_binary_labels(y, n_samples)
