"""The tabular benchmarks: ODDS (MATLAB files) and ADBench (``.npz`` files)."""

import zipfile

import numpy as np
import scipy.io

from ._files import _require_dir, resolve_data_dir


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
