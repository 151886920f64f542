"""CIFAR-10 from its standard "python version" files."""

import gzip
import io
import pickle
import tarfile
import zlib
from pathlib import PurePosixPath

import numpy as np

from ._files import _check_md5, _download, _md5, resolve_data_dir

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
