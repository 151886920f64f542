"""A fitted detector survives pickle, joblib and save/load with identical scores, also when it
was fitted on CUDA and is loaded on a machine without a GPU (issue "Reliability")."""

import io
import os
import pickle

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import skmcad._detector
import skmcad.persistence
from skmcad import MCADDetector
from skmcad.persistence import FORMAT_VERSION, load_detector, save_detector

TINY = dict(stage1_epochs=1, stage2_epochs=1, width=2, memory_size=3, n_scales=2, batch_size=16,
            input_size=32, random_state=0)
CPU = torch.device("cpu")

_rng = np.random.default_rng(0)
X_TAB = _rng.normal(size=(40, 5))
X_IMG = _rng.random((40, 8, 8, 3)).astype(np.float32)


@pytest.fixture(scope="module")
def tabular():
    return MCADDetector(**TINY).fit(X_TAB)


@pytest.fixture(scope="module")
def named_tabular():
    frame = pd.DataFrame(X_TAB, columns=[f"f{i}" for i in range(5)])
    return MCADDetector(**TINY).fit(frame), frame


@pytest.fixture(scope="module")
def image():
    return MCADDetector(**TINY).fit(X_IMG)


@pytest.fixture(scope="module")
def flat_image():
    return MCADDetector(**TINY, image_shape=(8, 8, 3)).fit(X_IMG.reshape(40, -1))


def assert_same_detector(restored, original, X):
    """Same attributes, parameters, training results and scores; modules on the CPU here."""
    assert sorted(restored.__dict__) == sorted(original.__dict__)
    assert restored.get_params() == original.get_params()
    assert restored.layout_ == original.layout_
    assert restored.n_features_in_ == original.n_features_in_
    assert restored.history_ == original.history_
    assert np.array_equal(restored.decision_scores_, original.decision_scores_)
    assert restored.decision_scores_.dtype == original.decision_scores_.dtype
    assert restored.threshold_ == original.threshold_
    assert np.array_equal(restored.labels_, original.labels_)
    assert restored._mu == original._mu and restored._sigma == original._sigma
    assert np.array_equal(restored.standardizer_.mean, original.standardizer_.mean)
    assert np.array_equal(restored.standardizer_.std, original.standardizer_.std)
    assert not restored.network_.training and not restored.scorer_.training
    assert not any(p.requires_grad for p in restored.network_.parameters())
    assert not any(p.requires_grad for p in restored.scorer_.parameters())
    assert np.array_equal(restored.decision_function(X), original.decision_function(X))
    assert np.array_equal(restored.predict(X), original.predict(X))
    assert np.array_equal(restored.predict_proba(X), original.predict_proba(X))


def joblib_roundtrip(obj):
    buffer = io.BytesIO()
    joblib.dump(obj, buffer)
    buffer.seek(0)
    return joblib.load(buffer)


def save_load(detector):
    buffer = io.BytesIO()
    detector.save(buffer)
    buffer.seek(0)
    return MCADDetector.load(buffer)


# -- pickle and joblib -------------------------------------------------------------------------

@pytest.mark.parametrize("roundtrip", [lambda d: pickle.loads(pickle.dumps(d)), joblib_roundtrip],
                         ids=["pickle", "joblib"])
def test_pickle_and_joblib_of_a_tabular_detector_keep_identical_scores(tabular, roundtrip):
    assert_same_detector(roundtrip(tabular), tabular, X_TAB)


def test_pickled_detector_refits_and_clones(tabular):
    restored = pickle.loads(pickle.dumps(tabular))
    assert clone(restored).get_params() == tabular.get_params()
    refit = restored.fit(X_TAB)
    assert np.array_equal(refit.decision_function(X_TAB), tabular.decision_function(X_TAB))


def test_detector_fitted_on_cuda_unpickles_on_a_cpu_only_machine(tabular, monkeypatch):
    """No GPU here: pretend. ``__getstate__`` copies modules it finds off the CPU onto it (the
    real modules stay where they are); ``__setstate__`` falls back to the CPU when ``device_``
    is CUDA and CUDA is unavailable."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    fitted_on_cuda = pickle.loads(pickle.dumps(tabular))  # an independent copy to alter
    fitted_on_cuda.device_ = torch.device("cuda", 0)
    network = fitted_on_cuda.network_
    monkeypatch.setattr(skmcad._detector, "_module_device", lambda module: torch.device("cuda"))
    payload = pickle.dumps(fitted_on_cuda)
    monkeypatch.undo()
    assert fitted_on_cuda.network_ is network  # pickling copied, never moved, the modules
    assert fitted_on_cuda.device_ == torch.device("cuda", 0)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    restored = pickle.loads(payload)
    assert restored.device_ == CPU
    assert all(p.device == CPU for p in restored.network_.parameters())
    assert np.array_equal(restored.decision_function(X_TAB), tabular.decision_function(X_TAB))


def test_cuda_tensors_in_a_torch_file_load_on_the_cpu_with_map_location(tabular, monkeypatch):
    """A file written from CUDA tensors records their device; ``torch.load`` without
    ``map_location`` refuses it on a CPU-only machine, ``load`` maps it to the CPU."""
    buffer = io.BytesIO()
    fitted_on_cuda = pickle.loads(pickle.dumps(tabular)).set_params(device="cuda")  # saved...
    monkeypatch.setattr(torch.serialization, "location_tag", lambda storage: "cuda:0")
    save_detector(fitted_on_cuda, buffer)  # ...and every tensor tagged as on cuda:0
    monkeypatch.undo()

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    buffer.seek(0)
    with pytest.raises(RuntimeError, match="CUDA"):
        torch.load(buffer, weights_only=True)
    buffer.seek(0)
    restored = MCADDetector.load(buffer)
    assert restored.device == "cuda" and restored.device_ == CPU
    assert np.array_equal(restored.decision_function(X_TAB), tabular.decision_function(X_TAB))


# -- save / load -------------------------------------------------------------------------------

def test_save_load_of_a_tabular_detector_keeps_identical_scores(tabular, tmp_path):
    path = tmp_path / "tabular.skmcad"
    tabular.save(path)
    restored = MCADDetector.load(path)
    assert_same_detector(restored, tabular, X_TAB)
    assert restored.device_ == tabular.device_
    assert next(restored.network_.parameters()).dtype == torch.float64  # tabular precision


def test_save_load_keeps_feature_names(named_tabular, tmp_path):
    detector, frame = named_tabular
    path = str(tmp_path / "named.pt")
    save_detector(detector, path)
    restored = load_detector(path)
    assert list(restored.feature_names_in_) == list(frame.columns)
    assert_same_detector(restored, detector, frame)


@pytest.mark.parametrize("which", ["image", "flat_image"])
def test_save_load_of_an_image_detector_keeps_identical_scores_and_maps(which, request):
    detector = request.getfixturevalue(which)
    X = X_IMG if which == "image" else X_IMG.reshape(40, -1)
    restored = save_load(detector)
    assert_same_detector(restored, detector, X)
    assert np.array_equal(restored.anomaly_map(X[:5]), detector.anomaly_map(X[:5]))


def test_loaded_detector_pickles_refits_and_saves_again(tabular):
    restored = save_load(tabular)
    assert_same_detector(pickle.loads(pickle.dumps(restored)), tabular, X_TAB)
    assert_same_detector(save_load(restored), tabular, X_TAB)
    assert_same_detector(clone(restored).fit(X_TAB), tabular, X_TAB)


def test_random_state_instance_is_saved_with_its_state():
    detector = MCADDetector(**{**TINY, "random_state": np.random.RandomState(3)}).fit(X_TAB)
    restored = save_load(detector)
    assert isinstance(restored.random_state, np.random.RandomState)
    assert restored.random_state.randint(2 ** 31) == detector.random_state.randint(2 ** 31)
    assert np.array_equal(restored.decision_function(X_TAB), detector.decision_function(X_TAB))


def test_saved_file_loads_weights_only_and_holds_the_documented_header(tabular, tmp_path):
    path = tmp_path / "detector.pt"
    tabular.save(path)
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "skmcad" and payload["format_version"] == FORMAT_VERSION
    assert payload["class"] == "MCADDetector"
    assert payload["skmcad_version"] == __import__("skmcad").__version__
    assert payload["params"]["memory_size"] == TINY["memory_size"]
    assert {"network", "scorer", "layout", "standardizer", "history", "n_features_in",
            "decision_scores", "threshold", "labels", "mu", "sigma", "classes",
            "dtype"} <= set(payload["state"])


def test_another_format_version_is_refused(tabular, tmp_path):
    path = tmp_path / "future.pt"
    tabular.save(path)
    payload = torch.load(path, weights_only=True)
    payload["format_version"] = FORMAT_VERSION + 1
    torch.save(payload, path)
    with pytest.raises(ValueError, match=rf"format version {FORMAT_VERSION + 1}.*reads format "
                                         rf"version {FORMAT_VERSION} only"):
        MCADDetector.load(path)


def _write_bytes(data):
    return lambda detector, path: path.write_bytes(data)


@pytest.mark.parametrize("write", [
    lambda detector, path: torch.save({"weights": torch.zeros(3)}, path),
    lambda detector, path: torch.save(detector.network_.state_dict(), path),
    lambda detector, path: torch.save(detector, path),  # a full pickle: its code never runs
    lambda detector, path: path.write_bytes(pickle.dumps(detector)),
    _write_bytes(b"hello, not a model"),
    _write_bytes(b""),
], ids=["other torch dict", "bare state dict", "torch-pickled detector", "pickle", "text",
        "empty"])
def test_files_that_are_not_skmcad_files_are_refused(tabular, tmp_path, write):
    path = tmp_path / "other.pt"
    write(tabular, path)
    with pytest.raises(ValueError, match="not an skmcad detector file"):
        MCADDetector.load(path)


def test_parameters_unknown_to_this_version_are_refused(tabular, tmp_path):
    path = tmp_path / "newer.pt"
    tabular.save(path)
    payload = torch.load(path, weights_only=True)
    payload["params"]["a_future_parameter"] = 1
    torch.save(payload, path)
    with pytest.raises(ValueError, match=r"does not know: \['a_future_parameter'\]"):
        MCADDetector.load(path)


def test_saved_file_permissions_follow_the_umask(tabular, tmp_path):
    umask = os.umask(0o022)
    os.umask(umask)
    path = tmp_path / "shared.pt"
    tabular.save(path)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_damaged_state_is_refused_with_a_value_error(tabular, tmp_path):
    path = tmp_path / "damaged.pt"
    tabular.save(path)
    payload = torch.load(path, weights_only=True)
    del payload["state"]["network"]["encoder.stages.0.0.weight"]
    torch.save(payload, path)
    with pytest.raises(ValueError, match="damaged skmcad detector file"):
        MCADDetector.load(path)


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        MCADDetector.load(tmp_path / "nothing.pt")


def test_saving_an_unfitted_detector_raises_not_fitted(tmp_path):
    with pytest.raises(NotFittedError):
        MCADDetector(**TINY).save(tmp_path / "unfitted.pt")
    with pytest.raises(NotFittedError):
        save_detector(MCADDetector(**TINY), tmp_path / "unfitted.pt")
    assert not (tmp_path / "unfitted.pt").exists()


def test_an_interrupted_save_keeps_the_previous_file(tabular, image, tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    tabular.save(path)
    before = path.read_bytes()

    def interrupted(obj, file, *args, **kwargs):
        file.write(b"partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(skmcad.persistence.torch, "save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        image.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["model.pt"]  # no temporary file left behind
    assert_same_detector(MCADDetector.load(path), tabular, X_TAB)


@pytest.mark.parametrize("params", [
    {"memory": "grid", "scorer": "gaussian"},
    {"memory": "grid", "scorer": "hybrid"},
    {"scorer": "conv"},
    {"stages": (4, 5), "neighbourhood": 3, "use_memory": False},
])
def test_save_load_of_each_memory_scorer_and_stage_choice(params, tmp_path):
    det = MCADDetector(**{**TINY, "n_scales": "auto", **params}).fit(X_IMG)
    det.save(tmp_path / "det.pt")
    loaded = MCADDetector.load(tmp_path / "det.pt")
    assert loaded.get_params() == det.get_params()
    np.testing.assert_array_equal(loaded.decision_function(X_IMG[:8]),
                                  det.decision_function(X_IMG[:8]))
    np.testing.assert_array_equal(loaded.anomaly_map(X_IMG[:2]), det.anomaly_map(X_IMG[:2]))
