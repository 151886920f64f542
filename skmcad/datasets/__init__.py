"""Loaders of the standard benchmark data sets and the anomaly-detection splits built on them.

Every loader reads the files in their usual distribution format from a local folder (see
:func:`resolve_data_dir`). Only :func:`load_cifar10` and :func:`load_mnist` can fetch their
files, and only when called with ``download=True``. One module per family of data sets
(:mod:`~skmcad.datasets.cifar10`, :mod:`~skmcad.datasets.mnist`, :mod:`~skmcad.datasets.tabular`
for ODDS and ADBench, :mod:`~skmcad.datasets.magnetic_tile`, :mod:`~skmcad.datasets.image_folder`),
the protocols' splits in :mod:`~skmcad.datasets.splits`; every loader is importable from here.

Examples
--------
>>> from skmcad.datasets import load_digits_images, one_class_split
>>> X, y = load_digits_images()
>>> X.shape, X.dtype.name
((1797, 8, 8), 'float32')
>>> X_fit, X_eval, y_eval = one_class_split(X[:1000], y[:1000], X[1000:], y[1000:], 0)
>>> bool((y_eval == 0).sum() == (y[1000:] == 0).sum())
True
"""

from ._files import resolve_data_dir
from .cifar10 import load_cifar10
from .digits import load_digits_images
from .image_folder import list_image_folder_categories, load_image_folder
from .magnetic_tile import load_magnetic_tile
from .mnist import load_mnist
from .splits import one_class_split, unbalanced_split
from .tabular import list_adbench, list_odds, load_adbench, load_odds

__all__ = [
    "resolve_data_dir",
    "load_digits_images",
    "load_cifar10",
    "load_mnist",
    "list_odds",
    "load_odds",
    "list_adbench",
    "load_adbench",
    "load_magnetic_tile",
    "list_image_folder_categories",
    "load_image_folder",
    "one_class_split",
    "unbalanced_split",
]
