"""Where the data sets live, and fetching and checking their files."""

import hashlib
import os
from pathlib import Path

DATA_ENV_VAR = "SKMCAD_DATA"
DEFAULT_DATA_DIR = "~/skmcad_data"

DOWNLOAD_TIMEOUT = 60  # seconds without data before a download is abandoned


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
    import pooch

    return pooch.file_hash(str(path), alg="md5")


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


def _require_dir(folder, what):
    if not folder.is_dir():
        raise FileNotFoundError(f"{what} folder not found: {folder}.")
    return folder
