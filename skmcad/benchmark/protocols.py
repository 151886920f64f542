"""Evaluation protocols: which data each run fits on and scores.

A protocol loads its data once (:meth:`Protocol.load`) and then yields one :class:`Task` per
(subset, seed): the subset is a normal class for the one-class image protocols and a data
set for the tabular ones.

- ``digits``: scikit-learn's bundled 8x8 digits split 50/50, stratified, with a fixed seed;
  then one-class per digit (train on that digit's training half, score the whole test half).
- ``cifar10``, ``mnist``: one-class on the official splits (train on one class's training
  images, score the whole test split, that class normal, every other class anomalous).
- unified (the image protocols with ``unified``): the subset is the anomalous class; one
  model is fitted on every other class's training images, without class labels
  (:func:`unified_split`).
- unbalanced (the image protocols with an ``anomaly_ratio``): per normal class and seed,
  ``n_labelled_classes`` of the other classes are drawn (a generator seeded with
  ``(seed, normal class)``), and the training set is every training image of the normal
  class plus labelled anomalies drawn from those classes only, making up ``anomaly_ratio`` of
  it (:func:`unbalanced_training_set`, built on :func:`skmcad.datasets.unbalanced_split`).
  The whole test split is scored as in one-class, so its anomalies include the classes never
  seen as labelled.
- ``odds``: PyOD's benchmark (its ``benchmark.py``): per seed a random 60/40 split, not
  stratified, as PyOD's, z-score fitted on the training part; the detector is fitted on the
  whole (unlabelled) training part.
- ``adbench``: ADBench's unsupervised setting (its ``DataGenerator``): data sets over 10,000
  samples randomly cut (stratified) to 10,000, per seed a 70/30 stratified split, min-max
  scaling fitted on the training part, the detector fitted on the whole (unlabelled)
  training part.
  ADBench also duplicates samples of data sets under 1,000 samples; that is not done here,
  since duplicates then sit in both the training and the test part.

- ``magnetic-tile`` (localisation): the Magnetic Tile Defect set resized to
  ``LOCALISATION_SIZE`` px; per seed a random split of the defect-free ``MT_Free`` images,
  ``MAGNETIC_TILE_TRAIN`` of them for training and the rest for the test part, which also
  holds every defect image. Tasks carry the test masks and defect classes.
- ``image-folder`` (localisation): MVTec AD-style folders (see
  :func:`skmcad.datasets.load_image_folder`), one subset per category: fit on
  ``train/good``, score ``test/``, with masks from ``ground_truth/``.

Images are given as float32 pixels in [0, 1] in their natural layout ``(n, H, W)`` or
``(n, H, W, C)``; the runner flattens them for detectors that take rows.
"""

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import numpy as np

# The 17 ODDS data sets of PyOD's benchmark (benchmark.py in the PyOD repository).
PYOD_BENCHMARK_ODDS = (
    "arrhythmia", "cardio", "glass", "ionosphere", "letter", "lympho", "mnist", "musk",
    "optdigits", "pendigits", "pima", "satellite", "satimage-2", "shuttle", "vertebral",
    "vowels", "wbc",
)
DIGITS_SPLIT_SEED = 0  # the digits train/test split is the same in every run and seed
DEFAULT_LABELLED_CLASSES = 5  # unbalanced protocol: labelled anomalies from 5 of the others
# Localisation protocols: images and masks resized to 128 px, which the detectors' backbone
# then reads without resizing. Magnetic Tile's images are 103-632 x 222-403 px (median
# 270 x 324), the shorter side at least 122 px for 95 % of them: 128 px is about their own
# resolution for the smallest, every Blowhole and Crack mask keeps 5 or more pixels, the
# stride-16 features form an 8 x 8 grid, and MCAD's fit stays within minutes on 2 cores.
LOCALISATION_SIZE = 128
MAGNETIC_TILE_TRAIN = 0.7  # fraction of the defect-free images used for training


@dataclass(frozen=True)
class Task:
    """One fit-and-score problem.

    Parameters
    ----------
    subset : str
        Normal class (image protocols) or data set name (tabular protocols).
    seed : int
        Seed of the split (tabular) and of the detectors.
    X_fit : ndarray
        Training data.
    X_eval : ndarray
        Test data.
    y_eval : ndarray of int
        Test labels, 1 = anomaly.
    y_fit : ndarray of int or None, default=None
        Training labels, 1 = labelled anomaly (unbalanced protocol); None when the training
        data is unlabelled.
    anomaly_ratio : float or None, default=None
        Fraction of labelled anomalies asked for in the training data (unbalanced protocol).
    labelled_classes : tuple of int, default=()
        Classes the labelled anomalies were drawn from (unbalanced protocol).
    masks_eval : ndarray of bool or None, default=None
        Test pixel masks (n_test, H, W), True on defect pixels (localisation protocols).
    groups_eval : ndarray of str or None, default=None
        Defect class of each test image (localisation protocols); image AUROC, pixel AUROC
        and AUPRO are also reported per defect class against the normal test images.
    """

    subset: str
    seed: int
    X_fit: np.ndarray
    X_eval: np.ndarray
    y_eval: np.ndarray
    y_fit: Optional[np.ndarray] = None
    anomaly_ratio: Optional[float] = None
    labelled_classes: tuple = ()
    masks_eval: Optional[np.ndarray] = None
    groups_eval: Optional[np.ndarray] = None


def subsample(X, y=None, max_n=None, random_state=0):
    """Return at most ``max_n`` rows of ``X`` (and ``y``), stratified on ``y`` when given.

    Examples
    --------
    >>> import numpy as np
    >>> X, y = np.arange(100), np.r_[np.zeros(90), np.ones(10)]
    >>> Xs, ys = subsample(X, y, max_n=20)
    >>> len(Xs), int(ys.sum())
    (20, 2)
    """
    if max_n is None or len(X) <= max_n:
        return X if y is None else (X, y)
    if y is None:
        keep = np.sort(np.random.default_rng(random_state).choice(len(X), max_n, replace=False))
        return X[keep]
    X_part, _, y_part, _ = _train_test_split(
        X, y, train_size=max_n, stratify=y, random_state=random_state
    )
    return X_part, y_part


def choose_labelled_classes(y_train, normal_class, n_classes, random_state=None):
    """Return, sorted, ``n_classes`` classes of ``y_train`` other than ``normal_class``.

    Parameters
    ----------
    y_train : array-like of shape (n_train,)
    normal_class : scalar
    n_classes : int or None
        How many of the other classes to draw; None for all of them.
    random_state : int, sequence of int or None, default=None
        Seed of ``np.random.default_rng``.

    Examples
    --------
    >>> import numpy as np
    >>> choose_labelled_classes(np.arange(10), 3, 4, random_state=0).tolist()
    [2, 5, 6, 8]
    """
    others = np.unique(np.asarray(y_train)[np.asarray(y_train) != normal_class])
    if n_classes is None:
        return others
    if not 1 <= n_classes <= len(others):
        raise ValueError(f"cannot draw labelled anomalies from {n_classes} classes: class "
                         f"{normal_class} has {len(others)} other classes")
    rng = np.random.default_rng(random_state)
    return np.sort(rng.choice(others, n_classes, replace=False))


def unbalanced_training_set(X_train, y_train, normal_class, anomaly_ratio,
                            n_labelled_classes=DEFAULT_LABELLED_CLASSES, seed=0,
                            max_train=None):
    """Return the unbalanced protocol's training set, its labels and the labelled classes.

    The training samples are restricted to ``normal_class`` and ``n_labelled_classes``
    classes drawn among the others (generator seeded with ``(seed, normal_class)``, so the
    same classes whatever the ratio), then :func:`skmcad.datasets.unbalanced_split` keeps
    every normal sample and draws labelled anomalies from those classes so that they make up
    ``anomaly_ratio`` of the set.

    Parameters
    ----------
    X_train : ndarray of shape (n_train, ...)
    y_train : ndarray of int of shape (n_train,)
    normal_class : int
    anomaly_ratio : float in (0, 0.5]
    n_labelled_classes : int or None, default=5
        None: anomalies from every other class.
    seed : int, default=0
    max_train : int or None, default=None
        Keep about this many training samples (quick runs): the normal samples are cut to
        ``round(max_train * (1 - anomaly_ratio))`` before the anomalies are drawn.

    Returns
    -------
    X_fit : ndarray
        Shuffled training samples.
    y_fit : ndarray of int64
        1 for the labelled anomalies, 0 for the normal samples.
    labelled_classes : ndarray
        The classes the anomalies were drawn from.

    Examples
    --------
    >>> import numpy as np
    >>> y = np.repeat(np.arange(10), 100); X = y.reshape(-1, 1)
    >>> X_fit, y_fit, labelled = unbalanced_training_set(X, y, 0, 0.05, 2, seed=0)
    >>> len(X_fit), int(y_fit.sum()), labelled.tolist()
    (105, 5, [6, 7])
    """
    from skmcad.datasets import unbalanced_split

    y_train = np.asarray(y_train)
    labelled = choose_labelled_classes(y_train, normal_class, n_labelled_classes,
                                       random_state=[seed, int(normal_class)])
    normal = np.flatnonzero(y_train == normal_class)
    if max_train is not None:
        n_normal = max(1, round(max_train * (1 - anomaly_ratio)))
        if n_normal < normal.size:
            normal = np.sort(np.random.default_rng(seed).choice(normal, n_normal, replace=False))
    keep = np.sort(np.concatenate([normal, np.flatnonzero(np.isin(y_train, labelled))]))
    X_fit, y_fit = unbalanced_split(X_train[keep], y_train[keep], normal_class, anomaly_ratio,
                                    random_state=seed)
    return X_fit, y_fit, labelled


def unified_split(X_train, y_train, X_test, y_test, anomalous_class):
    """The unified protocol's split: fit on every class but ``anomalous_class``, without
    class labels; score the whole test split, ``anomalous_class`` the only anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> X = np.arange(6).reshape(6, 1); y = np.array([0, 1, 0, 1, 2, 0])
    >>> X_fit, X_eval, y_eval = unified_split(X, y, X, y, anomalous_class=1)
    >>> X_fit.ravel().tolist(), y_eval.tolist()
    ([0, 2, 4, 5], [0, 1, 0, 1, 0, 0])
    """
    y_train, y_test = np.asarray(y_train), np.asarray(y_test)
    if not (y_train == anomalous_class).any():
        raise ValueError(f"class {anomalous_class} is not in the training labels")
    return (np.asarray(X_train)[y_train != anomalous_class], np.asarray(X_test),
            (y_test == anomalous_class).astype(np.int64))


def to_unit_float(images):
    """Return images as float32 in [0, 1] (uint8 is divided by 255)."""
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)
    return images.astype(np.float32, copy=False)


def _train_test_split(*arrays, **options):
    # scikit-learn loads when a protocol reads its data, not at import: --help stays fast
    from sklearn.model_selection import train_test_split

    return train_test_split(*arrays, **options)


class Protocol:
    """Base of the protocols.

    Attributes
    ----------
    name : str
    kind : {"image", "tabular"}
    default_seeds : int
        Number of seeds when ``--seeds`` is not given.
    supports_unbalanced : bool
        Whether the protocol has an unbalanced variant (``anomaly_ratio`` given).

    Parameters
    ----------
    data_dir : str or None
    max_train, max_test : int or None
        Quick runs: at most (about, for the unbalanced training set) that many samples.
    anomaly_ratio : float or None, default=None
        Unbalanced protocol: fraction of labelled anomalies in the training data.
    n_labelled_classes : int or None, default=5
        Unbalanced protocol: number of other classes the labelled anomalies come from
        (None: all of them).
    download : bool, default=False
    unified : bool, default=False
        Unified protocol (:class:`OneClassImages`): the subset is the anomalous class, every
        other class is normal, and one model is fitted on all of them without class labels.
    """

    name = ""
    kind = "image"
    default_seeds = 1
    supports_unbalanced = False  # whether it takes an ``anomaly_ratio``
    supports_unified = False  # whether it takes ``unified``

    def __init__(self, data_dir=None, max_train=None, max_test=None, anomaly_ratio=None,
                 n_labelled_classes=DEFAULT_LABELLED_CLASSES, download=False, unified=False):
        if anomaly_ratio is not None and not self.supports_unbalanced:
            raise ValueError(f"the {self.name} protocol has no unbalanced variant")
        if unified and not self.supports_unified:
            raise ValueError(f"the {self.name} protocol has no unified variant")
        self.unified = unified
        self.data_dir = data_dir
        self.download = download  # fetch missing files where the data set has a stable URL
        self.max_train = max_train
        self.max_test = max_test
        self.anomaly_ratio = anomaly_ratio
        self.n_labelled_classes = n_labelled_classes

    def default_subsets(self):
        """Return the subsets run when ``--classes`` is not given."""
        raise NotImplementedError

    def parse_subsets(self, text):
        """Return the subsets named in a ``--classes`` value."""
        return [part.strip() for part in text.split(",") if part.strip()]

    def load(self, subsets):
        """Read the data the given subsets need; raise if it cannot be found."""
        raise NotImplementedError

    def tasks(self, subsets, seeds):
        """Yield one :class:`Task` per subset and seed (after :meth:`load`)."""
        raise NotImplementedError

    def load_tasks(self, classes, seeds=(0,)):
        """The tasks of the subsets named by ``classes`` (a ``--classes`` value), loaded."""
        subsets = self.parse_subsets(classes)
        self.load(subsets)
        return self.tasks(subsets, list(seeds))


class OneClassImages(Protocol):
    """One-class (or, with ``anomaly_ratio``, unbalanced) protocol on a labelled image
    train/test split (see module docstring)."""

    supports_unbalanced = True
    supports_unified = True

    def _read(self):
        """Return ``(X_train, y_train, X_test, y_test)``."""
        raise NotImplementedError

    def default_subsets(self):
        return [str(label) for label in range(10)]

    def parse_subsets(self, text):
        subsets = super().parse_subsets(text)
        bad = [s for s in subsets if not s.isdigit()]
        if bad:
            raise ValueError(f"--classes for {self.name} takes class numbers, got {bad}")
        return subsets

    def load(self, subsets):
        self._data = self._read()
        present = {str(label) for label in np.unique(self._data[1])}
        missing = [s for s in subsets if s not in present]
        if missing:
            raise ValueError(f"{self.name} has no class {missing}; classes: {sorted(present)}")
        n_others = len(present) - 1
        if self.anomaly_ratio is not None and self.n_labelled_classes is not None and not (
                1 <= self.n_labelled_classes <= n_others):
            raise ValueError(f"labelled anomaly classes must be between 1 and {n_others} for "
                             f"{self.name}, got {self.n_labelled_classes}")

    def tasks(self, subsets, seeds):
        from skmcad.datasets import one_class_split

        X_train, y_train, X_test, y_test = self._data
        split = unified_split if self.unified else one_class_split
        for subset in subsets:
            X_fit, X_eval, y_eval = split(X_train, y_train, X_test, y_test, int(subset))
            for seed in seeds:
                if self.anomaly_ratio is None:
                    yield self._task(subset, seed, X_fit, X_eval, y_eval)
                else:
                    yield self._unbalanced_task(subset, seed, X_eval, y_eval)

    def _unbalanced_task(self, subset, seed, X_eval, y_eval):
        X_train, y_train = self._data[:2]
        X_fit, y_fit, labelled = unbalanced_training_set(
            X_train, y_train, int(subset), self.anomaly_ratio, self.n_labelled_classes,
            seed=seed, max_train=self.max_train,
        )
        X_eval, y_eval = subsample(X_eval, y_eval, self.max_test, random_state=seed)
        return Task(subset, seed, to_unit_float(X_fit), to_unit_float(X_eval), y_eval,
                    y_fit=y_fit, anomaly_ratio=self.anomaly_ratio,
                    labelled_classes=tuple(int(c) for c in labelled))

    def _task(self, subset, seed, X_fit, X_eval, y_eval):
        X_fit = subsample(X_fit, max_n=self.max_train, random_state=seed)
        X_eval, y_eval = subsample(X_eval, y_eval, self.max_test, random_state=seed)
        return Task(subset, seed, to_unit_float(X_fit), to_unit_float(X_eval), y_eval)


class Digits(OneClassImages):
    name = "digits"

    def _read(self):
        from skmcad.datasets import load_digits_images

        X, y = load_digits_images()
        X_train, X_test, y_train, y_test = _train_test_split(
            X, y, test_size=0.5, stratify=y, random_state=DIGITS_SPLIT_SEED
        )
        return X_train, y_train, X_test, y_test


class Cifar10(OneClassImages):
    name = "cifar10"

    def _read(self):
        from skmcad.datasets import load_cifar10

        return load_cifar10(self.data_dir, download=self.download)


class Mnist(OneClassImages):
    name = "mnist"

    def _read(self):
        from skmcad.datasets import load_mnist

        return load_mnist(self.data_dir, download=self.download)


class TabularSplits(Protocol):
    """Random splits of labelled tables (stratified unless ``stratify`` is False), scaled on
    the training part.

    Attributes
    ----------
    test_size : float
        Fraction of each data set in the test part.
    max_samples : int or None
        Data sets larger than this are randomly cut to it (per seed) before splitting.
    scaler : {"standard", "minmax"}
        scikit-learn's StandardScaler or MinMaxScaler, fitted on the training part.
    stratify : bool
        Whether the train/test split keeps the anomaly fraction.
    """

    kind = "tabular"
    test_size = 0.4
    max_samples = None
    scaler = "standard"
    stratify = True

    def _read(self, name):
        """Return ``(X, y)`` of the data set ``name``."""
        raise NotImplementedError

    def load(self, subsets):
        self._data = {name: self._read(name) for name in subsets}

    def tasks(self, subsets, seeds):
        for subset in subsets:
            X, y = self._data[subset]
            for seed in seeds:
                yield self._task(subset, seed, X, y)

    def _task(self, subset, seed, X, y):
        X, y = subsample(X, y, self.max_samples, random_state=seed)
        X_fit, X_eval, _, y_eval = _train_test_split(
            X, y, test_size=self.test_size, stratify=y if self.stratify else None,
            random_state=seed
        )
        X_fit = subsample(X_fit, max_n=self.max_train, random_state=seed)
        X_eval, y_eval = subsample(X_eval, y_eval, self.max_test, random_state=seed)
        from sklearn.preprocessing import MinMaxScaler, StandardScaler

        scaler = {"standard": StandardScaler, "minmax": MinMaxScaler}[self.scaler]().fit(X_fit)
        return Task(subset, seed, scaler.transform(X_fit), scaler.transform(X_eval), y_eval)


class Odds(TabularSplits):
    name = "odds"
    default_seeds = 10
    test_size = 0.4
    stratify = False  # PyOD's benchmark.py: train_test_split(X, y, test_size=0.4)

    def default_subsets(self):
        from skmcad.datasets import list_odds

        available = set(list_odds(self.data_dir))
        missing = [name for name in PYOD_BENCHMARK_ODDS if name not in available]
        if missing:
            warnings.warn(f"ODDS data sets not found, skipped: {missing}", stacklevel=2)
        return [name for name in PYOD_BENCHMARK_ODDS if name in available]

    def _read(self, name):
        from skmcad.datasets import load_odds

        return load_odds(name, self.data_dir)


class ADBench(TabularSplits):
    name = "adbench"
    default_seeds = 3  # ADBench's seed list has three seeds
    test_size = 0.3
    max_samples = 10_000
    scaler = "minmax"

    def default_subsets(self):
        from skmcad.datasets import list_adbench

        return list_adbench(self.data_dir)

    def _read(self, name):
        from skmcad.datasets import load_adbench

        return load_adbench(name, self.data_dir)


def magnetic_tile_split(labels, seed, train_fraction=MAGNETIC_TILE_TRAIN):
    """Return sorted ``(fit, test)`` indices: a seeded share of the normal images for
    training; the other normal images and every anomalous one for the test part.

    Examples
    --------
    >>> import numpy as np
    >>> fit, test = magnetic_tile_split(np.r_[np.zeros(10), np.ones(3)], seed=0)
    >>> len(fit), len(test), int(np.isin(np.arange(10, 13), test).all())
    (7, 6, 1)
    """
    labels = np.asarray(labels)
    normal = np.flatnonzero(labels == 0)
    fit = np.sort(np.random.default_rng(seed).permutation(normal)[
        :int(round(train_fraction * len(normal)))])
    return fit, np.setdiff1d(np.arange(len(labels)), fit)


class Localisation(Protocol):
    """Protocols whose test images have pixel masks: fit on normal images, score the test
    images with their masks and defect classes.

    Attributes
    ----------
    input_size : int
        Side of the images, used by the CLI as every backbone's input size unless
        ``--mcad-params`` names one.
    """

    input_size = LOCALISATION_SIZE

    def _localisation_task(self, subset, seed, X_fit, X_eval, y_eval, masks, groups):
        X_fit = subsample(X_fit, max_n=self.max_train, random_state=seed)
        keep, _ = subsample(np.arange(len(y_eval)), y_eval, self.max_test, random_state=seed)
        keep = np.sort(keep)
        return Task(subset, seed, to_unit_float(X_fit), to_unit_float(X_eval[keep]),
                    y_eval[keep], masks_eval=masks[keep], groups_eval=groups[keep])


class MagneticTile(Localisation):
    name = "magnetic-tile"

    def default_subsets(self):
        return ["all"]

    def parse_subsets(self, text):
        subsets = super().parse_subsets(text)
        if subsets != ["all"]:
            raise ValueError("--classes for magnetic-tile takes only 'all'; every defect "
                             "class is reported in its own rows")
        return subsets

    def load(self, subsets):
        from skmcad.datasets import load_magnetic_tile

        self._data = load_magnetic_tile(self.data_dir, size=self.input_size)

    def tasks(self, subsets, seeds):
        images, labels, masks, classes = self._data
        for seed in seeds:
            fit, test = magnetic_tile_split(labels, seed)
            yield self._localisation_task("all", seed, images[fit], images[test],
                                          labels[test], masks[test], classes[test])


class ImageFolder(Localisation):
    name = "image-folder"

    def _root(self):
        if self.data_dir is None:
            raise ValueError("--dataset image-folder needs --data-dir: a folder of MVTec "
                             "AD-style categories, or one category's folder")
        return Path(self.data_dir).expanduser()

    def default_subsets(self):
        from skmcad.datasets import list_image_folder_categories

        # a folder holding train/ and test/ is itself the one category
        return list_image_folder_categories(self._root()) or [self._root().name]

    def load(self, subsets):
        from skmcad.datasets import load_image_folder

        root = self._root()
        self._data = {
            name: load_image_folder(root, self.input_size,
                                    None if (root / "train").is_dir() else name)
            for name in subsets}

    def tasks(self, subsets, seeds):
        for subset in subsets:
            X_train, X_test, y_test, masks, defects = self._data[subset]
            for seed in seeds:
                yield self._localisation_task(subset, seed, X_train, X_test, y_test, masks,
                                              defects)


PROTOCOLS = {cls.name: cls for cls in (Digits, Cifar10, Mnist, Odds, ADBench)}
PROTOCOLS.update({cls.name: cls for cls in (MagneticTile, ImageFolder)})
