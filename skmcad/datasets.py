"""Loaders of the standard benchmark data sets and the anomaly-detection splits built on them.

Every loader reads the files in their usual distribution format from a local folder (see
:func:`resolve_data_dir`). Only :func:`load_cifar10` and :func:`load_mnist` can fetch their
files, and only when called with ``download=True``.

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

import functools
import gzip
import hashlib
import io
import numbers
import os
import pickle
import struct
import tarfile
import zipfile
import zlib
from pathlib import Path, PurePosixPath

import numpy as np
import scipy.io

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

DATA_ENV_VAR = "SKMCAD_DATA"
DEFAULT_DATA_DIR = "~/skmcad_data"

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_ARCHIVE = "cifar-10-python.tar.gz"
CIFAR10_FOLDER = "cifar-10-batches-py"
CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
# md5 of the files inside the archive: the archive itself may be repacked, its members not.
CIFAR10_MD5 = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}

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

DOWNLOAD_TIMEOUT = 60  # seconds without data before a download is abandoned


# --------------------------------------------------------------------------------------------
# Folders and files
# --------------------------------------------------------------------------------------------


def resolve_data_dir(data_dir=None, name=None):
    """Return the folder a loader reads from.

    The base folder is, in this order of precedence:

    1. ``data_dir`` when given;
    2. the environment variable ``SKMCAD_DATA`` when set and not empty;
    3. ``~/skmcad_data``.

    When ``name`` is given and the base folder has a subfolder of that name, the subfolder is
    returned instead, so one root can hold every data set (``<root>/cifar10``,
    ``<root>/mnist``, ``<root>/odds``, ``<root>/adbench``, ``<root>/magnetic_tile``) and a
    loader can still be pointed
    straight at one data set's folder.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder given by the caller; ``~`` is expanded.
    name : str, default=None
        Name of the data set's subfolder, e.g. ``"cifar10"``.

    Returns
    -------
    path : pathlib.Path
        The folder. It is not checked to exist.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> (root / "odds").mkdir()
    >>> resolve_data_dir(root, "odds") == root / "odds"
    True
    >>> resolve_data_dir(root, "mnist") == root
    True
    """
    if data_dir is not None:
        base = data_dir
    else:
        base = os.environ.get(DATA_ENV_VAR) or DEFAULT_DATA_DIR
    base = Path(base).expanduser()
    if name is not None and (base / name).is_dir():
        return base / name
    return base


def _md5(data):
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def _md5_file(path):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_md5(label, actual, expected):
    if actual != expected:
        raise ValueError(
            f"Checksum mismatch for {label}: expected md5 {expected}, got {actual}. "
            "The file is corrupt or not the official one; delete it and fetch it again."
        )


def _download(url, dest, check):
    """Fetch ``url`` to ``dest`` with pooch, through a temporary file, and return
    ``check(temporary_path)``.

    ``dest`` only appears once ``check`` accepted the data (the checksums of the file, or of
    the files inside an archive), so an interrupted or corrupt download never leaves a file
    that a later call would trust.
    """
    import pooch

    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.part")
    tmp.unlink(missing_ok=True)  # pooch would take a leftover file for a finished download
    try:
        try:
            pooch.retrieve(url, known_hash=None, fname=tmp.name, path=dest.parent,
                           downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT))
        except OSError as exc:  # requests' errors are OSErrors
            raise OSError(f"Could not download {url} to {dest}: {exc}") from exc
        result = check(tmp)
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return result


# --------------------------------------------------------------------------------------------
# scikit-learn digits
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that only rebuilds numpy arrays.

    A CIFAR batch is a pickle, and unpickling an arbitrary file can run arbitrary code; the
    batches only need these globals (``_codecs.encode`` is how protocol 2 stores bytes).
    """

    _ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("_codecs", "encode"),
    }

    def find_class(self, module, name):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a batch")
        return super().find_class(module, name)


def _find_cifar_source(root):
    """Return the extracted folder or the archive under ``root``, or None."""
    if (root / CIFAR10_FOLDER).is_dir():
        return root / CIFAR10_FOLDER
    if root.is_dir() and (root.name == CIFAR10_FOLDER or (root / CIFAR10_TEST_FILE).is_file()):
        return root
    archive = root / CIFAR10_ARCHIVE
    return archive if archive.is_file() else None


def _read_cifar_folder(folder, names):
    contents = {}
    for name in names:
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"CIFAR-10 batch {name!r} is missing: expected {path}.")
        contents[name] = path.read_bytes()
    return contents


def _read_cifar_archive(archive, names):
    # One pass over the members: random access into a tar.gz decompresses it again each time.
    contents = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = PurePosixPath(member.name).name
                if member.isfile() and name in names:
                    contents[name] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise ValueError(f"{archive} is not a readable CIFAR-10 tar.gz archive: {exc}") from exc
    missing = [name for name in names if name not in contents]
    if missing:
        raise ValueError(f"{archive} lacks the CIFAR-10 batches {missing}; it is incomplete.")
    return contents


def _parse_cifar_batch(name, raw):
    try:
        batch = _ArrayUnpickler(io.BytesIO(raw), encoding="bytes").load()
        data = np.asarray(batch[b"data"])
        labels = np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as exc:
        raise ValueError(f"CIFAR-10 batch {name!r} cannot be read: {exc!r}") from exc
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(
            f"CIFAR-10 batch {name!r} holds data of shape {data.shape} and dtype {data.dtype}; "
            "expected uint8 rows of 3072 values."
        )
    if labels.shape != (len(data),):
        raise ValueError(
            f"CIFAR-10 batch {name!r} has {labels.size} labels for {len(data)} images."
        )
    # Rows are stored channel by channel (CHW); images are returned channels-last.
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar(source, verify):
    names = (*CIFAR10_TRAIN_FILES, CIFAR10_TEST_FILE)
    if source.is_dir():
        contents = _read_cifar_folder(source, names)
    else:
        contents = _read_cifar_archive(source, names)
    if verify:
        for name in names:
            _check_md5(f"CIFAR-10 batch {name!r} in {source}", _md5(contents[name]),
                       CIFAR10_MD5[name])
    train = [_parse_cifar_batch(name, contents.pop(name)) for name in CIFAR10_TRAIN_FILES]
    X_test, y_test = _parse_cifar_batch(CIFAR10_TEST_FILE, contents.pop(CIFAR10_TEST_FILE))
    X_train = np.concatenate([images for images, _ in train])
    y_train = np.concatenate([labels for _, labels in train])
    return X_train, y_train, X_test, y_test


def load_cifar10(data_dir=None, download=False, verify=True):
    """Load CIFAR-10 from its standard "python version" files.

    The files are looked for in the folder given by :func:`resolve_data_dir` (subfolder
    ``cifar10``), in this order: an extracted ``cifar-10-batches-py/`` subfolder, the folder
    itself when it is that extracted folder, then the archive ``cifar-10-python.tar.gz``,
    whose members are read without extracting them to disk.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder holding the files; see :func:`resolve_data_dir`.
    download : bool, default=False
        Fetch the archive from ``CIFAR10_URL`` into the folder when no files are found.
        Nothing is ever downloaded otherwise.
    verify : bool, default=True
        Check the md5 of every batch against ``CIFAR10_MD5``.

    Returns
    -------
    X_train : ndarray of shape (50000, 32, 32, 3), dtype uint8
    y_train : ndarray of shape (50000,), dtype int64
    X_test : ndarray of shape (10000, 32, 32, 3), dtype uint8
    y_test : ndarray of shape (10000,), dtype int64

    Raises
    ------
    FileNotFoundError
        No CIFAR-10 files in the folder and ``download=False``, or a batch missing from an
        extracted folder.
    ValueError
        A batch whose md5 differs from the official one, or an unreadable archive or batch.

    Examples
    --------
    >>> X_train, y_train, X_test, y_test = load_cifar10("~/skmcad_data")  # doctest: +SKIP
    >>> X_train.shape  # doctest: +SKIP
    (50000, 32, 32, 3)
    """
    root = resolve_data_dir(data_dir, "cifar10")
    source = _find_cifar_source(root)
    if source is not None:
        return _read_cifar(source, verify)
    if not download:
        raise FileNotFoundError(
            f"CIFAR-10 not found: expected {root / CIFAR10_ARCHIVE} or an extracted "
            f"{root / CIFAR10_FOLDER} folder. Pass download=True (--download on the benchmark "
            f"command line) to fetch it from {CIFAR10_URL}."
        )
    return _download(CIFAR10_URL, root / CIFAR10_ARCHIVE, lambda tmp: _read_cifar(tmp, verify))


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


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


# --------------------------------------------------------------------------------------------
# Tabular benchmarks: ODDS and ADBench
# --------------------------------------------------------------------------------------------


def _require_dir(folder, what):
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}.")
    return folder


def _tabular(path, X, y):
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y).ravel()
    if X.ndim != 2 or len(X) != len(y):
        raise ValueError(f"{path} holds X of shape {X.shape} and y of shape {y.shape}.")
    if not np.isin(y, (0, 1)).all():
        raise ValueError(f"{path} holds labels {np.unique(y)}; expected 0 (normal), 1 (anomaly).")
    return X, y.astype(np.int64)


def list_odds(data_dir=None):
    """List the ODDS data sets available locally.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder of ``*.mat`` files; see :func:`resolve_data_dir` (subfolder ``odds``).

    Returns
    -------
    names : list of str
        File stems in alphabetical order, e.g. ``["annthyroid", "arrhythmia", ...]``.

    Examples
    --------
    >>> list_odds("~/skmcad_data")[:2]  # doctest: +SKIP
    ['annthyroid', 'arrhythmia']
    """
    folder = _require_dir(resolve_data_dir(data_dir, "odds"), "ODDS")
    return sorted(path.stem for path in folder.glob("*.mat"))


def load_odds(name, data_dir=None):
    """Load one ODDS data set from its MATLAB file.

    Parameters
    ----------
    name : str
        File stem, e.g. ``"wbc"``; see :func:`list_odds`.
    data_dir : str or os.PathLike, default=None
        Folder of ``*.mat`` files; see :func:`resolve_data_dir` (subfolder ``odds``).

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
    y : ndarray of shape (n_samples,), dtype int64
        1 = outlier, 0 = inlier.

    Raises
    ------
    FileNotFoundError
        No ``<name>.mat`` in the folder.
    ValueError
        A file scipy cannot read (including MATLAB v7.3, which is HDF5), or without
        ``X``/``y``.

    Examples
    --------
    >>> X, y = load_odds("wbc", "~/skmcad_data")  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (378, 30)
    """
    folder = _require_dir(resolve_data_dir(data_dir, "odds"), "ODDS")
    path = folder / f"{name}.mat"
    if not path.is_file():
        raise FileNotFoundError(
            f"ODDS data set {name!r} not found: expected {path}. Available: {list_odds(folder)}."
        )
    try:
        mat = scipy.io.loadmat(path, variable_names=("X", "y"))
    except NotImplementedError as exc:
        raise ValueError(
            f"{path} is a MATLAB v7.3 (HDF5) file, which scipy cannot read; "
            "save it again in MATLAB's v7 format."
        ) from exc
    except (scipy.io.matlab.MatReadError, ValueError, TypeError, OSError) as exc:
        raise ValueError(f"{path} is not a readable MATLAB file: {exc}") from exc
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path} lacks the variables 'X' and 'y'.")
    return _tabular(path, mat["X"], mat["y"])


def _adbench_dir(data_dir):
    # ADBench ships its tabular sets in a "Classical" folder; accept its parent too.
    root = _require_dir(resolve_data_dir(data_dir, "adbench"), "ADBench")
    classical = root / "Classical"
    if classical.is_dir() and not any(root.glob("*.npz")):
        return classical
    return root


def _adbench_key(stem):
    number, _, rest = stem.partition("_")
    return (int(number), rest) if number.isdigit() else (float("inf"), stem)


def _adbench_path(folder, name):
    exact = folder / f"{name}.npz"
    if exact.is_file():
        return exact
    matches = [
        path for path in folder.glob("*.npz")
        if path.stem.partition("_")[2].lower() == name.lower()
    ]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ValueError(f"ADBench name {name!r} is ambiguous: {sorted(p.stem for p in matches)}.")
    raise FileNotFoundError(
        f"ADBench data set {name!r} not found: expected {exact}. "
        f"Available: {list_adbench(folder)}."
    )


def list_adbench(data_dir=None):
    """List the ADBench data sets available locally.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder of ``<id>_<name>.npz`` files, or its parent holding them in ``Classical/``;
        see :func:`resolve_data_dir` (subfolder ``adbench``).

    Returns
    -------
    names : list of str
        File stems ordered by their numeric id, e.g. ``["1_ALOI", "2_annthyroid", ...]``.

    Examples
    --------
    >>> list_adbench("~/skmcad_data")[:2]  # doctest: +SKIP
    ['1_ALOI', '2_annthyroid']
    """
    folder = _adbench_dir(data_dir)
    return sorted((path.stem for path in folder.glob("*.npz")), key=_adbench_key)


def load_adbench(name, data_dir=None):
    """Load one ADBench data set from its ``.npz`` file.

    Parameters
    ----------
    name : str
        File stem such as ``"4_breastw"``, or the name without its numeric prefix
        (``"breastw"``, matched case-insensitively).
    data_dir : str or os.PathLike, default=None
        See :func:`list_adbench`.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), dtype float64
    y : ndarray of shape (n_samples,), dtype int64
        1 = anomaly, 0 = normal.

    Raises
    ------
    FileNotFoundError
        No matching file.
    ValueError
        A name matching several files, or a file that is not a valid ``.npz`` with ``X``
        and ``y``.

    Examples
    --------
    >>> X, y = load_adbench("breastw", "~/skmcad_data")  # doctest: +SKIP
    >>> X.shape  # doctest: +SKIP
    (683, 9)
    """
    path = _adbench_path(_adbench_dir(data_dir), name)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in ("X", "y") if key in data}
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValueError(f"{path} is not a readable .npz file: {exc}") from exc
    if len(arrays) != 2:
        raise ValueError(f"{path} lacks the arrays 'X' and 'y'.")
    return _tabular(path, arrays["X"], arrays["y"])


# --------------------------------------------------------------------------------------------
# Industrial images with pixel masks: Magnetic Tile and MVTec AD-style folders
# --------------------------------------------------------------------------------------------

MAGNETIC_TILE_FREE = "Free"  # MT_Free: the defect-free class
MASK_THRESHOLD = 128  # mask pixels at or above it are defect (masks are noisy JPEG-era PNGs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
GOOD = "good"  # MVTec AD's name of the defect-free test folder


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels a side); got {size!r}.")
    return int(size)


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pillow is a dependency; say so if it is missing anyway
        raise ImportError("Reading image files needs Pillow: pip install pillow.") from exc
    return Image


def _read_image(path, size, mode):
    """``path`` as uint8 (size, size[, 3]) in PIL ``mode`` "L" or "RGB", resized bilinearly.

    Pillow widens its filter when shrinking, so a 600 px image is averaged, not aliased.
    """
    Image = _pil()
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"{path} is not a readable image: {exc}") from exc


def _read_mask(path, size):
    """Boolean (size, size) mask: thresholded at its own size, then resized by nearest."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            defect = np.asarray(image.convert("L")) >= MASK_THRESHOLD
    except OSError as exc:
        raise ValueError(f"{path} is not a readable mask: {exc}") from exc
    resized = Image.fromarray(defect.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(resized) >= MASK_THRESHOLD


def _image_files(folder):
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def _magnetic_tile_pairs(root):
    """``(class, image path, mask path)`` of every image, classes and names in sorted order."""
    folders = sorted(p for p in root.glob("MT_*") if p.is_dir())
    if not any(p.name == f"MT_{MAGNETIC_TILE_FREE}" for p in folders):
        raise FileNotFoundError(
            f"Magnetic Tile not found: expected {root / ('MT_' + MAGNETIC_TILE_FREE) / 'Imgs'} "
            "and the defect folders MT_<class>/Imgs beside it.")
    pairs = []
    for folder in folders:
        images = [p for p in _image_files(folder / "Imgs") if p.suffix.lower() == ".jpg"]
        for image in images:
            mask = image.with_suffix(".png")
            if not mask.is_file():
                raise FileNotFoundError(f"Magnetic Tile image {image} has no mask {mask.name}.")
            pairs.append((folder.name[len("MT_"):], image, mask))
    return pairs


def load_magnetic_tile(data_dir=None, size=128):
    """Load the Magnetic Tile Defect data set with its pixel masks, at one size.

    The folder holds the authors' release: ``MT_<class>/Imgs/<name>.jpg`` with its mask
    ``<name>.png`` beside it, for the defect-free class ``MT_Free`` and the defect classes
    (``Blowhole``, ``Break``, ``Crack``, ``Fray``, ``Uneven``). Images are read as grey and
    resized bilinearly to ``size`` x ``size`` (their aspect ratios, which vary, are not
    kept); masks are thresholded at 128 and resized by nearest neighbour.

    Source: Huang, Qiu, Yuan, "Surface defect saliency of magnetic tile", The Visual
    Computer 36, 2020.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder holding the ``MT_*`` folders; see :func:`resolve_data_dir` (subfolder
        ``magnetic_tile``).
    size : int, default=128
        Side, in pixels, of the returned images and masks.

    Returns
    -------
    images : ndarray of shape (n, size, size), dtype uint8
        Grey images, classes in alphabetical order, names sorted within a class.
    labels : ndarray of shape (n,), dtype int64
        1 for the images of a defect class, 0 for those of ``MT_Free``.
    masks : ndarray of shape (n, size, size), dtype bool
        True on defect pixels.
    classes : ndarray of shape (n,), dtype str
        Class of each image without the ``MT_`` prefix (``"Free"`` for defect-free ones).

    Raises
    ------
    FileNotFoundError
        No ``MT_Free`` folder, or an image without its mask.
    ValueError
        ``size`` not a positive integer, or a file that is not a readable image.

    Examples
    --------
    >>> images, labels, masks, classes = load_magnetic_tile("~/skmcad_data")  # doctest: +SKIP
    >>> images.shape, int(labels.sum())  # doctest: +SKIP
    ((1344, 128, 128), 392)
    """
    size = _check_size(size)
    root = _require_dir(resolve_data_dir(data_dir, "magnetic_tile"), "Magnetic Tile")
    pairs = _magnetic_tile_pairs(root)
    images = np.stack([_read_image(image, size, "L") for _, image, _ in pairs])
    masks = np.stack([_read_mask(mask, size) for _, _, mask in pairs])
    classes = np.array([name for name, _, _ in pairs])
    labels = (classes != MAGNETIC_TILE_FREE).astype(np.int64)
    return images, labels, masks, classes


def list_image_folder_categories(path):
    """List the categories of an MVTec AD-style folder: subfolders holding ``train/good``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    names : list of str
        Sorted; ``[]`` when ``path`` is itself one category's folder.

    Examples
    --------
    >>> list_image_folder_categories("mvtec_ad")  # doctest: +SKIP
    ['bottle', 'cable', 'capsule', ...]
    """
    folder = _require_dir(Path(path).expanduser(), "Image")
    return sorted(p.name for p in folder.iterdir() if (p / "train" / GOOD).is_dir())


def _mask_path(category_dir, defect, image):
    """MVTec AD's ``<name>_mask.png``, or ``<name>.png`` as VisA-style folders name them."""
    folder = category_dir / "ground_truth" / defect
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _image_mode(paths):
    """"L" when every image is grey (single band), else "RGB"."""
    Image = _pil()
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "I", "I;16", "1"):
                    return "RGB"
        except OSError as exc:
            raise ValueError(f"{path} is not a readable image: {exc}") from exc
    return "L"


def load_image_folder(path, size=128, category=None):
    """Load images laid out as MVTec AD's: normal training images, test images with masks.

    The category folder holds ``train/good/`` (defect-free training images),
    ``test/<defect>/`` (test images, ``test/good/`` the defect-free ones) and
    ``ground_truth/<defect>/<name>_mask.png`` (the mask of ``test/<defect>/<name>.*``;
    ``<name>.png`` is accepted too). This reads MVTec AD, VisA converted to that layout,
    or one's own images. Images are resized bilinearly to ``size`` x ``size``; masks are
    thresholded at 128 and resized by nearest neighbour. Defect images without a mask
    get an all-False mask.

    Parameters
    ----------
    path : str or os.PathLike
        The category folder, or, with ``category``, the folder holding it.
    size : int, default=128
        Side, in pixels, of the returned images and masks.
    category : str, default=None
        Subfolder of ``path`` to read, e.g. ``"bottle"``.

    Returns
    -------
    X_train : ndarray of shape (n_train, size, size) or (n_train, size, size, 3), uint8
        Grey when every image file of the category is grey, else RGB.
    X_test : ndarray of shape (n_test, size, size) or (n_test, size, size, 3), uint8
    y_test : ndarray of shape (n_test,), dtype int64
        1 for the images of a defect folder, 0 for ``test/good``.
    masks_test : ndarray of shape (n_test, size, size), dtype bool
        True on defect pixels; all False for good images.
    defects_test : ndarray of shape (n_test,), dtype str
        Test folder of each image (``"good"`` for defect-free ones).

    Raises
    ------
    FileNotFoundError
        No ``train/good`` or ``test`` folder, or one without images.
    ValueError
        ``size`` not a positive integer, or a file that is not a readable image.

    Examples
    --------
    >>> X_train, X_test, y_test, masks, defects = load_image_folder(
    ...     "mvtec_ad", size=128, category="bottle")  # doctest: +SKIP
    """
    size = _check_size(size)
    root = Path(path).expanduser()
    folder = _require_dir(root / category if category is not None else root, "Image category")
    train = _image_files(_require_dir(folder / "train" / GOOD, "Training (train/good)"))
    test_dir = _require_dir(folder / "test", "Test")
    test = [(d.name, image) for d in sorted(p for p in test_dir.iterdir() if p.is_dir())
            for image in _image_files(d)]
    if not train or not test:
        raise FileNotFoundError(f"{folder} needs images in train/good/ and in test/<defect>/.")
    mode = _image_mode(train + [image for _, image in test])
    masks = [_image_mask(folder, defect, image, size) for defect, image in test]
    defects = np.array([defect for defect, _ in test])
    return (np.stack([_read_image(p, size, mode) for p in train]),
            np.stack([_read_image(p, size, mode) for _, p in test]),
            (defects != GOOD).astype(np.int64), np.stack(masks), defects)


def _image_mask(folder, defect, image, size):
    mask = None if defect == GOOD else _mask_path(folder, defect, image)
    return np.zeros((size, size), dtype=bool) if mask is None else _read_mask(mask, size)


# --------------------------------------------------------------------------------------------
# Protocol splits
# --------------------------------------------------------------------------------------------


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
