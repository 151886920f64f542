"""Saving and loading fitted detectors as plain tensor files.

A fitted :class:`~skmcad.MCADDetector` pickles (``pickle``, ``joblib``), but a pickle runs
arbitrary code when it is loaded and ties the file to the classes of the version that wrote
it. :func:`save_detector` writes instead one ``torch.save`` file holding only tensors,
numbers, strings, lists, tuples and dicts::

    {"format": "skmcad", "format_version": 1, "skmcad_version": "0.1.0",
     "class": "MCADDetector", "params": {...get_params()...},
     "state": {"network": state_dict, "scorer": state_dict, "layout": {...},
               "standardizer": {"mean": tensor, "std": tensor}, "history": {...},
               "n_features_in": int, "feature_names_in": [str] (if fitted with names),
               "decision_scores": tensor, "threshold": float, "labels": tensor,
               "mu": float, "sigma": float, "classes": int, "dtype": "float32"}}

:func:`load_detector` reads it with ``torch.load(..., weights_only=True)``, so loading never
runs code from the file; it rebuilds the modules from the saved parameters and layout, loads
their weights on the CPU and moves them to the best available device for the saved
``device`` parameter (a detector fitted on CUDA loads and scores on a machine without a GPU).
"""

import os
import pickle
import uuid
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._detector import MCADDetector, _module_dtype
from .inputs import InputLayout, Standardizer
from .presets import resolve_params

FORMAT = "skmcad"
FORMAT_VERSION = 1
CLASS_NAME = "MCADDetector"

_RANDOM_STATE_TAG = "__numpy_random_state__"


def save_detector(detector, path):
    """Save a fitted :class:`~skmcad.MCADDetector` to ``path`` (weights-only torch file).

    Parameters
    ----------
    detector : MCADDetector
        A fitted detector.
    path : str, os.PathLike or writable binary file object
        A file path is written atomically: a file already there is replaced only once the
        new one is complete.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the detector is not fitted.
    TypeError
        If a parameter holds something other than numbers, strings, tuples, lists, None, a
        ``torch.device`` or a ``numpy.random.RandomState``.
    """
    check_is_fitted(detector)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "skmcad_version": _package_version(),
        "class": CLASS_NAME,
        "params": {name: _encode_param(name, value)
                   for name, value in detector.get_params(deep=False).items()},
        "state": _fitted_state(detector),
    }
    if not isinstance(path, (str, bytes, os.PathLike)):
        torch.save(payload, path)
        return
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    temporary = os.path.join(directory, f".{name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "xb") as file:  # "x": never another file; the umask applies
            torch.save(payload, file)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def load_detector(path):
    """Load a detector written by :func:`save_detector`.

    Parameters
    ----------
    path : str, os.PathLike or readable binary file object

    Returns
    -------
    MCADDetector
        Fitted, on the best available device for its ``device`` parameter: the CPU when the
        detector was fitted on CUDA and no GPU is present.

    Raises
    ------
    ValueError
        If the file is not an skmcad detector file, or was written in another format version.
    """
    payload = _read(path)
    _check_header(payload, path)
    try:
        params = {name: _decode_param(value) for name, value in payload["params"].items()}
        unknown = sorted(set(params) - set(MCADDetector().get_params()))
        if unknown:
            raise ValueError(f"{_describe(path)} holds parameters this skmcad "
                             f"({_package_version()}) does not know: {unknown}; it was written "
                             f"by skmcad {payload.get('skmcad_version')}.")
        detector = MCADDetector(**params)
        _restore_state(detector, payload["state"])
    except (KeyError, TypeError, RuntimeError, AttributeError) as error:
        raise ValueError(f"{_describe(path)} is a damaged skmcad detector file: "
                         f"{type(error).__name__}: {error}") from error
    return detector


# -- writing ----------------------------------------------------------------------------------

def _package_version():
    from . import __version__

    return __version__


def _encode_param(name, value):
    """Parameters as weights-only-loadable values."""
    if isinstance(value, np.random.RandomState):
        kind, key, pos, has_gauss, cached = value.get_state(legacy=True)
        return {_RANDOM_STATE_TAG: kind, "key": torch.from_numpy(key.astype(np.int64)),
                "pos": int(pos), "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return type(value)(_encode_param(name, v) for v in value)
    if value is None or isinstance(value, (bool, int, float, str, torch.device)):
        return value
    raise TypeError(f"Parameter {name}={value!r} cannot be saved: only numbers, strings, "
                    f"tuples, lists, None, torch.device and numpy RandomState are supported.")


def _tensor(array):
    return torch.from_numpy(np.array(array, copy=True))


def _fitted_state(detector):
    layout = detector.layout_
    state = {
        "network": _cpu_state_dict(detector.network_),
        "scorer": _cpu_state_dict(detector.scorer_),
        "layout": {"kind": layout.kind, "sample_shape": tuple(layout.sample_shape),
                   "order": layout.order,
                   "image_size": None if layout.image_size is None else tuple(layout.image_size)},
        "standardizer": {"mean": _tensor(detector.standardizer_.mean),
                         "std": _tensor(detector.standardizer_.std)},
        "history": {stage: [float(loss) for loss in losses]
                    for stage, losses in detector.history_.items()},
        "n_features_in": int(detector.n_features_in_),
        "decision_scores": _tensor(detector.decision_scores_),
        "threshold": float(detector.threshold_),
        "labels": _tensor(detector.labels_),
        "mu": float(detector._mu),
        "sigma": float(detector._sigma),
        "classes": int(detector._classes),
        "dtype": str(_module_dtype(detector.scorer_)).removeprefix("torch."),
    }
    if hasattr(detector, "feature_names_in_"):
        state["feature_names_in"] = [str(name) for name in detector.feature_names_in_]
    return state


def _cpu_state_dict(module):
    return {name: tensor.detach().cpu().clone() for name, tensor in module.state_dict().items()}


# -- reading ----------------------------------------------------------------------------------

def _describe(path):
    return repr(os.fspath(path)) if isinstance(path, (str, bytes, os.PathLike)) else "the file"


def _read(path):
    if isinstance(path, (str, bytes, os.PathLike)) and not os.path.isfile(path):
        raise FileNotFoundError(f"No such file: {os.fspath(path)!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # torch's notes on foreign pickles
            return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, TypeError,
            AttributeError, ImportError, IndexError, KeyError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{_describe(path)} is not an skmcad detector file (one written by "
            f"MCADDetector.save or save_detector): it cannot be read as a weights-only torch "
            f"file ({type(error).__name__}). A pickled detector is read with pickle or joblib, "
            f"and only from a trusted source.") from None


def _check_header(payload, path):
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ValueError(f"{_describe(path)} is not an skmcad detector file (written by "
                         f"MCADDetector.save / save_detector): it has no 'format': "
                         f"{FORMAT!r} entry.")
    version = payload.get("format_version")
    if version != FORMAT_VERSION:
        raise ValueError(
            f"{_describe(path)} is an skmcad file in format version {version!r} (written by "
            f"skmcad {payload.get('skmcad_version')}); this skmcad ({_package_version()}) "
            f"reads format version {FORMAT_VERSION} only.")
    if payload.get("class") != CLASS_NAME:
        raise ValueError(f"{_describe(path)} holds a {payload.get('class')!r}, not an "
                         f"{CLASS_NAME}.")


def _decode_param(value):
    if isinstance(value, dict) and _RANDOM_STATE_TAG in value:
        random_state = np.random.RandomState()
        random_state.set_state((value[_RANDOM_STATE_TAG], value["key"].numpy().astype(np.uint32),
                                value["pos"], value["has_gauss"], value["cached_gaussian"]))
        return random_state
    if isinstance(value, (tuple, list)):
        return type(value)(_decode_param(v) for v in value)
    return value


def _load_device(device):
    """The saved ``device`` parameter on this machine: CUDA only where it is available."""
    name = str(device)
    if name != "auto" and torch.device(name).type != "cuda":
        return torch.device(name)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if name == "auto" or (torch.device(name).index or 0) >= torch.cuda.device_count():
        return torch.device("cuda")
    return torch.device(name)


def _restore_state(detector, state):
    layout_state = state["layout"]
    layout = InputLayout(
        kind=layout_state["kind"], sample_shape=tuple(layout_state["sample_shape"]),
        order=layout_state["order"],
        image_size=(None if layout_state["image_size"] is None
                    else tuple(layout_state["image_size"])))
    standardizer = Standardizer(state["standardizer"]["mean"].numpy(),
                                state["standardizer"]["std"].numpy())
    dtype = getattr(torch, state["dtype"])
    cpu = torch.device("cpu")
    config = resolve_params(detector.get_params(), layout.kind, layout.image_side)
    network, scorer = detector._build_modules(config, layout, standardizer, 0, cpu, dtype)
    network.load_state_dict(state["network"])
    scorer.load_state_dict(state["scorer"])
    device = _load_device(detector.device)
    network.requires_grad_(False).eval().to(device)
    scorer.requires_grad_(False).eval().to(device)

    detector.n_features_in_ = int(state["n_features_in"])
    if "feature_names_in" in state:
        detector.feature_names_in_ = np.asarray(state["feature_names_in"], dtype=object)
    detector.config_ = config
    detector.layout_, detector.standardizer_, detector.device_ = layout, standardizer, device
    detector._classes = int(state["classes"])
    detector.network_, detector.scorer_ = network, scorer
    detector.history_ = {stage: list(losses) for stage, losses in state["history"].items()}
    detector.decision_scores_ = state["decision_scores"].numpy()
    detector.threshold_ = np.float64(state["threshold"])
    detector.labels_ = state["labels"].numpy()
    detector._mu = np.float64(state["mu"])
    detector._sigma = np.float64(state["sigma"])
