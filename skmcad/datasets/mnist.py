"""MNIST from its four standard gzipped IDX files."""

import functools
import gzip
import struct
import zlib

import numpy as np

from ._files import _check_md5, _download, _md5_file, resolve_data_dir

MNIST_BASE_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
MNIST_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
MNIST_MD5 = {
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}
# IDX magic number: two zero bytes, the type code (0x08 = unsigned byte), the number of dims.
_IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}


def _parse_idx(path, kind):
    """Read a gzipped IDX file of unsigned bytes; ``kind`` is "images" or "labels"."""
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValueError(f"{path} is not a readable gzip file: {exc}") from exc
    expected_magic = _IDX_MAGIC[kind]
    n_dims = expected_magic & 0xFF
    header_size = 4 * (1 + n_dims)
    if len(raw) < header_size:
        raise ValueError(f"{path} is too short to be an IDX {kind} file.")
    magic, *shape = struct.unpack(f">{1 + n_dims}I", raw[:header_size])
    if magic != expected_magic:
        raise ValueError(
            f"{path} has IDX magic number {magic:#010x}; expected {expected_magic:#010x} "
            f"for {kind}."
        )
    if len(raw) - header_size != int(np.prod(shape)):
        raise ValueError(
            f"{path} holds {len(raw) - header_size} data bytes; its header announces "
            f"shape {tuple(shape)}."
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header_size).reshape(shape)


def _check_mnist_file(path, filename, verify):
    if verify:
        _check_md5(f"MNIST file {path}", _md5_file(path), MNIST_MD5[filename])


def _fetch_mnist(root, filenames, verify):
    for filename in filenames:
        check = functools.partial(_check_mnist_file, filename=filename, verify=verify)
        _download(MNIST_BASE_URL + filename, root / filename, check)


def _load_mnist_split(root, split, verify):
    arrays = []
    for kind in ("images", "labels"):
        filename = MNIST_FILES[f"{split}_{kind}"]
        path = root / filename
        _check_mnist_file(path, filename, verify)
        arrays.append(_parse_idx(path, kind))
    images, labels = arrays
    if len(images) != len(labels):
        raise ValueError(
            f"MNIST {split} split has {len(images)} images but {len(labels)} labels in {root}."
        )
    return images, labels.astype(np.int64)


def load_mnist(data_dir=None, download=False, verify=True):
    """Load MNIST from its four standard gzipped IDX files.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder holding ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
        ``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``; see
        :func:`resolve_data_dir` (subfolder ``mnist``).
    download : bool, default=False
        Fetch the missing files from ``MNIST_BASE_URL`` into the folder. Nothing is ever
        downloaded otherwise.
    verify : bool, default=True
        Check the md5 of every file against ``MNIST_MD5``.

    Returns
    -------
    X_train : ndarray of shape (60000, 28, 28), dtype uint8
    y_train : ndarray of shape (60000,), dtype int64
    X_test : ndarray of shape (10000, 28, 28), dtype uint8
    y_test : ndarray of shape (10000,), dtype int64

    Raises
    ------
    FileNotFoundError
        A file is missing and ``download=False``.
    ValueError
        A file whose md5 differs from the official one, or that is not a valid IDX file.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_mnist("~/skmcad_data")  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (60000, 28, 28)
    """
    root = resolve_data_dir(data_dir, "mnist")
    missing = [name for name in MNIST_FILES.values() if not (root / name).is_file()]
    if missing and not download:
        raise FileNotFoundError(
            f"MNIST files {missing} not found in {root}. "
            f"Pass download=True (--download on the benchmark command line) to fetch them from "
            f"{MNIST_BASE_URL}."
        )
    _fetch_mnist(root, missing, verify)
    X_train, y_train = _load_mnist_split(root, "train", verify)
    X_test, y_test = _load_mnist_split(root, "test", verify)
    return X_train, y_train, X_test, y_test
