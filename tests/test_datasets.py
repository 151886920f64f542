"""Tests of skmcad.datasets on small files written in the standard formats."""

import functools
import gzip
import hashlib
import http.server
import io
import pickle
import struct
import tarfile
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import scipy.io

from skmcad import datasets
from skmcad.datasets import cifar10 as cifar_module
from skmcad.datasets import mnist as mnist_module

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
N_PER_BATCH = 20
CIFAR_NAMES = (*cifar_module.CIFAR10_TRAIN_FILES, cifar_module.CIFAR10_TEST_FILE)


def md5(data):
    return hashlib.md5(data).hexdigest()


# --------------------------------------------------------------------------------------------
# Builders of small files in the standard formats
# --------------------------------------------------------------------------------------------


def cifar_batch(seed, n=N_PER_BATCH):
    rng = np.random.default_rng(seed)
    batch = {
        b"batch_label": b"fake batch",
        b"labels": rng.integers(0, 10, n).tolist(),
        b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
    }
    # Protocol 2 with bytes keys, as the official (Python 2) batches are written.
    return pickle.dumps(batch, protocol=2)


@pytest.fixture
def cifar_contents():
    return {name: cifar_batch(seed) for seed, name in enumerate(CIFAR_NAMES)}


@pytest.fixture
def cifar_md5(monkeypatch, cifar_contents):
    """Make the checksum table match the fake batches, so verification is exercised."""
    table = {name: md5(raw) for name, raw in cifar_contents.items()}
    monkeypatch.setattr(cifar_module, "CIFAR10_MD5", table)
    return table


def write_cifar_tar(path, contents):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w:gz") as tar:
        for name, raw in {**contents, "batches.meta": b"meta"}.items():
            info = tarfile.TarInfo(f"{cifar_module.CIFAR10_FOLDER}/{name}")
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def write_cifar_folder(folder, contents):
    folder.mkdir(parents=True)
    for name, raw in contents.items():
        (folder / name).write_bytes(raw)
    return folder


def idx_gz(array, magic=None):
    array = np.asarray(array, dtype=np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    header = struct.pack(f">{1 + array.ndim}I", magic, *array.shape)
    return gzip.compress(header + array.tobytes())


def mnist_contents(n_train=12, n_test=6):
    rng = np.random.default_rng(0)
    arrays = {
        "train_images": rng.integers(0, 256, (n_train, 28, 28)),
        "train_labels": rng.integers(0, 10, n_train),
        "test_images": rng.integers(0, 256, (n_test, 28, 28)),
        "test_labels": rng.integers(0, 10, n_test),
    }
    return {mnist_module.MNIST_FILES[key]: idx_gz(value) for key, value in arrays.items()}


@pytest.fixture
def mnist_files(monkeypatch):
    contents = mnist_contents()
    table = {name: md5(raw) for name, raw in contents.items()}
    monkeypatch.setattr(mnist_module, "MNIST_MD5", table)
    return contents


def write_files(folder, contents):
    folder.mkdir(parents=True, exist_ok=True)
    for name, raw in contents.items():
        (folder / name).write_bytes(raw)
    return folder


@pytest.fixture
def no_network(monkeypatch):
    import pooch

    def refuse(*args, **kwargs):
        raise AssertionError("the network must not be used")

    monkeypatch.setattr(pooch, "retrieve", refuse)
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_root(tmp_path_factory):
    """Serve a temporary folder over HTTP on 127.0.0.1; yield (folder, base URL)."""
    folder = tmp_path_factory.mktemp("served")
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --------------------------------------------------------------------------------------------
# resolve_data_dir
# --------------------------------------------------------------------------------------------


def test_resolve_data_dir_argument_wins(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMCAD_DATA", str(tmp_path / "env"))
    assert datasets.resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert isinstance(datasets.resolve_data_dir(str(tmp_path)), Path)


def test_resolve_data_dir_env_and_subfolder(tmp_path, monkeypatch):
    monkeypatch.setenv("SKMCAD_DATA", str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path
    assert datasets.resolve_data_dir(name="mnist") == tmp_path
    (tmp_path / "mnist").mkdir()
    assert datasets.resolve_data_dir(name="mnist") == tmp_path / "mnist"


def test_resolve_data_dir_home_default(tmp_path, monkeypatch):
    monkeypatch.delenv("SKMCAD_DATA", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert datasets.resolve_data_dir() == tmp_path / "skmcad_data"
    (tmp_path / "skmcad_data" / "odds").mkdir(parents=True)
    assert datasets.resolve_data_dir(name="odds") == tmp_path / "skmcad_data" / "odds"
    monkeypatch.setenv("SKMCAD_DATA", "")
    assert datasets.resolve_data_dir() == tmp_path / "skmcad_data"
    assert datasets.resolve_data_dir("~/x") == tmp_path / "x"


# --------------------------------------------------------------------------------------------
# digits
# --------------------------------------------------------------------------------------------


def test_load_digits_images():
    X, y = datasets.load_digits_images()
    assert X.shape == (1797, 8, 8) and X.dtype == np.float32
    assert X.min() == 0 and X.max() == 1
    assert y.shape == (1797,) and y.dtype == np.int64 and set(y) == set(range(10))


# --------------------------------------------------------------------------------------------
# CIFAR-10
# --------------------------------------------------------------------------------------------


def check_cifar(result, contents):
    X_train, y_train, X_test, y_test = result
    assert X_train.shape == (5 * N_PER_BATCH, 32, 32, 3) and X_train.dtype == np.uint8
    assert X_test.shape == (N_PER_BATCH, 32, 32, 3) and X_test.dtype == np.uint8
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    first = pickle.loads(contents["data_batch_1"], encoding="bytes")
    test = pickle.loads(contents["test_batch"], encoding="bytes")
    # Row layout is CHW: channel c of pixel (h, w) is at c * 1024 + h * 32 + w.
    assert X_train[3, 5, 7, 2] == first[b"data"][3, 2 * 1024 + 5 * 32 + 7]
    assert y_train[:N_PER_BATCH].tolist() == first[b"labels"]
    assert y_test.tolist() == test[b"labels"]


def test_cifar_from_archive(tmp_path, cifar_contents, cifar_md5, no_network):
    write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    check_cifar(datasets.load_cifar10(tmp_path), cifar_contents)
    assert not (tmp_path / cifar_module.CIFAR10_FOLDER).exists()  # nothing extracted


def test_cifar_from_named_subfolder(tmp_path, cifar_contents, cifar_md5, monkeypatch):
    write_cifar_tar(tmp_path / "cifar10" / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    monkeypatch.setenv("SKMCAD_DATA", str(tmp_path))
    check_cifar(datasets.load_cifar10(), cifar_contents)


def test_cifar_from_extracted_folder(tmp_path, cifar_contents, cifar_md5):
    folder = write_cifar_folder(tmp_path / cifar_module.CIFAR10_FOLDER, cifar_contents)
    check_cifar(datasets.load_cifar10(tmp_path), cifar_contents)
    check_cifar(datasets.load_cifar10(folder), cifar_contents)


def test_cifar_checksum_mismatch(tmp_path, cifar_contents, cifar_md5):
    expected = cifar_md5["data_batch_3"]
    cifar_contents["data_batch_3"] = cifar_batch(seed=99)
    write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    with pytest.raises(ValueError, match="data_batch_3") as info:
        datasets.load_cifar10(tmp_path)
    assert expected in str(info.value)
    assert md5(cifar_contents["data_batch_3"]) in str(info.value)
    assert len(datasets.load_cifar10(tmp_path, verify=False)[0]) == 5 * N_PER_BATCH


def test_cifar_real_checksums_reject_fake_files(tmp_path, cifar_contents):
    write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    with pytest.raises(ValueError, match="c99cafc152244af753f735de768cd75f"):
        datasets.load_cifar10(tmp_path)


@pytest.mark.parametrize("corrupt", ["truncated", "garbage"])
def test_cifar_unreadable_archive(tmp_path, cifar_contents, corrupt):
    archive = write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    raw = archive.read_bytes()
    archive.write_bytes(raw[: len(raw) // 2] if corrupt == "truncated" else b"not a tar" * 100)
    with pytest.raises(ValueError, match="not a readable CIFAR-10 tar.gz"):
        datasets.load_cifar10(tmp_path, verify=False)


def test_cifar_archive_missing_member(tmp_path, cifar_contents):
    del cifar_contents["test_batch"]
    write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    with pytest.raises(ValueError, match="test_batch"):
        datasets.load_cifar10(tmp_path, verify=False)


def test_cifar_folder_missing_batch(tmp_path, cifar_contents):
    del cifar_contents["data_batch_4"]
    folder = write_cifar_folder(tmp_path / cifar_module.CIFAR10_FOLDER, cifar_contents)
    with pytest.raises(FileNotFoundError, match="data_batch_4") as info:
        datasets.load_cifar10(tmp_path, verify=False)
    assert str(folder / "data_batch_4") in str(info.value)


def test_cifar_missing(tmp_path, no_network):
    with pytest.raises(FileNotFoundError, match="download=True") as info:
        datasets.load_cifar10(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere" / cifar_module.CIFAR10_ARCHIVE) in str(info.value)


class Exploit:
    def __reduce__(self):
        return (print, ("unpickling ran code",))


def test_cifar_batch_cannot_run_code(tmp_path, cifar_contents, capsys):
    cifar_contents["data_batch_1"] = pickle.dumps({b"data": Exploit()}, protocol=2)
    write_cifar_tar(tmp_path / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    with pytest.raises(ValueError, match="data_batch_1.*not allowed"):
        datasets.load_cifar10(tmp_path, verify=False)
    assert "ran code" not in capsys.readouterr().out


def test_cifar_batch_of_wrong_shape(tmp_path, cifar_contents):
    batch = {b"data": np.zeros((3, 100), np.uint8), b"labels": [0, 1, 2]}
    cifar_contents["test_batch"] = pickle.dumps(batch, protocol=2)
    write_cifar_folder(tmp_path / cifar_module.CIFAR10_FOLDER, cifar_contents)
    with pytest.raises(ValueError, match="test_batch.*3072"):
        datasets.load_cifar10(tmp_path, verify=False)


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------


def test_mnist(tmp_path, mnist_files, no_network):
    write_files(tmp_path, mnist_files)
    X_train, y_train, X_test, y_test = datasets.load_mnist(tmp_path)
    assert X_train.shape == (12, 28, 28) and X_train.dtype == np.uint8
    assert X_test.shape == (6, 28, 28) and y_test.shape == (6,)
    assert y_train.dtype == np.int64 and y_train.max() < 10
    raw = gzip.decompress(mnist_files["train-images-idx3-ubyte.gz"])
    assert X_train[2, 3, 4] == raw[16 + 2 * 784 + 3 * 28 + 4]


def test_mnist_bad_magic(tmp_path, mnist_files):
    name = "t10k-labels-idx1-ubyte.gz"
    mnist_files[name] = idx_gz(np.zeros(6), magic=0x0803)
    write_files(tmp_path, mnist_files)
    with pytest.raises(ValueError, match=f"{name}.*magic"):
        datasets.load_mnist(tmp_path, verify=False)


def test_mnist_size_mismatch(tmp_path, mnist_files):
    name = "train-images-idx3-ubyte.gz"
    mnist_files[name] = gzip.compress(gzip.decompress(mnist_files[name])[:-5])
    write_files(tmp_path, mnist_files)
    with pytest.raises(ValueError, match=f"{name}.*announces"):
        datasets.load_mnist(tmp_path, verify=False)


def test_mnist_not_gzip(tmp_path, mnist_files):
    mnist_files["train-labels-idx1-ubyte.gz"] = b"plain bytes"
    write_files(tmp_path, mnist_files)
    with pytest.raises(ValueError, match="train-labels-idx1-ubyte.gz.*gzip"):
        datasets.load_mnist(tmp_path, verify=False)


def test_mnist_count_mismatch(tmp_path, mnist_files):
    mnist_files["t10k-labels-idx1-ubyte.gz"] = idx_gz(np.zeros(5))
    write_files(tmp_path, mnist_files)
    with pytest.raises(ValueError, match="6 images but 5 labels"):
        datasets.load_mnist(tmp_path, verify=False)


def test_mnist_checksum_mismatch(tmp_path, mnist_files):
    mnist_files["t10k-images-idx3-ubyte.gz"] = idx_gz(np.ones((6, 28, 28)))
    write_files(tmp_path, mnist_files)
    with pytest.raises(ValueError, match="t10k-images-idx3-ubyte.gz.*expected md5"):
        datasets.load_mnist(tmp_path)


def test_mnist_missing(tmp_path, mnist_files, no_network):
    del mnist_files["train-labels-idx1-ubyte.gz"]
    write_files(tmp_path, mnist_files)
    with pytest.raises(FileNotFoundError, match="train-labels-idx1-ubyte.gz.*download=True"):
        datasets.load_mnist(tmp_path)


# --------------------------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------------------------


def test_cifar_download(tmp_path, http_root, cifar_contents, cifar_md5, monkeypatch):
    served, base_url = http_root
    write_cifar_tar(served / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", base_url + cifar_module.CIFAR10_ARCHIVE)
    target = tmp_path / "data"
    check_cifar(datasets.load_cifar10(target, download=True), cifar_contents)
    assert [p.name for p in target.iterdir()] == [cifar_module.CIFAR10_ARCHIVE]
    # Present now: loading again, even with download=True, does not fetch it again.
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", base_url + "gone.tar.gz")
    check_cifar(datasets.load_cifar10(target, download=True), cifar_contents)


def test_cifar_download_bad_checksum_leaves_nothing(tmp_path, http_root, cifar_contents,
                                                    monkeypatch):
    served, base_url = http_root
    write_cifar_tar(served / cifar_module.CIFAR10_ARCHIVE, cifar_contents)
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", base_url + cifar_module.CIFAR10_ARCHIVE)
    with pytest.raises(ValueError, match="Checksum mismatch"):
        datasets.load_cifar10(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


def test_download_http_error_leaves_nothing(tmp_path, http_root, monkeypatch):
    _, base_url = http_root
    monkeypatch.setattr(cifar_module, "CIFAR10_URL", base_url + "absent.tar.gz")
    with pytest.raises(OSError, match="Could not download .*absent.tar.gz"):
        datasets.load_cifar10(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


def test_mnist_download_only_missing(tmp_path, http_root, mnist_files, monkeypatch):
    served, base_url = http_root
    write_files(served, mnist_files)
    monkeypatch.setattr(mnist_module, "MNIST_BASE_URL", base_url)
    present = "t10k-labels-idx1-ubyte.gz"
    write_files(tmp_path, {present: mnist_files[present]})
    (served / present).unlink()  # a request for it would fail
    X_train, _, X_test, _ = datasets.load_mnist(tmp_path, download=True)
    assert X_train.shape == (12, 28, 28) and X_test.shape == (6, 28, 28)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(mnist_files)


def test_mnist_download_bad_checksum_leaves_nothing(tmp_path, http_root, mnist_files,
                                                    monkeypatch):
    served, base_url = http_root
    write_files(served, mnist_files)
    monkeypatch.setattr(mnist_module, "MNIST_BASE_URL", base_url)
    monkeypatch.setitem(mnist_module.MNIST_MD5, "train-images-idx3-ubyte.gz", "0" * 32)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte.gz"):
        datasets.load_mnist(tmp_path, download=True)
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------------------------
# ODDS
# --------------------------------------------------------------------------------------------


@pytest.fixture
def odds_dir(tmp_path):
    folder = tmp_path / "odds"
    folder.mkdir()
    X = np.arange(30, dtype=np.int16).reshape(10, 3)
    y = np.array([[0]] * 8 + [[1]] * 2, dtype=np.uint8)
    scipy.io.savemat(folder / "toy.mat", {"X": X, "y": y})
    scipy.io.savemat(folder / "another.mat", {"X": X.astype(float), "y": y.astype(float)})
    return folder


def test_odds(tmp_path, odds_dir):
    assert datasets.list_odds(tmp_path) == ["another", "toy"]
    X, y = datasets.load_odds("toy", tmp_path)
    assert X.shape == (10, 3) and X.dtype == np.float64 and X[2, 1] == 7
    assert y.shape == (10,) and y.dtype == np.int64 and y.sum() == 2


def test_odds_missing(tmp_path, odds_dir):
    with pytest.raises(FileNotFoundError, match="nope.*another"):
        datasets.load_odds("nope", odds_dir)
    with pytest.raises(FileNotFoundError, match="ODDS folder"):
        datasets.list_odds(tmp_path / "absent")


def test_odds_bad_files(odds_dir):
    (odds_dir / "garbage.mat").write_bytes(b"\x01" * 300)
    with pytest.raises(ValueError, match="garbage.mat"):
        datasets.load_odds("garbage", odds_dir)
    scipy.io.savemat(odds_dir / "nokeys.mat", {"data": np.zeros((2, 2))})
    with pytest.raises(ValueError, match="lacks"):
        datasets.load_odds("nokeys", odds_dir)
    scipy.io.savemat(odds_dir / "labels.mat", {"X": np.zeros((2, 2)), "y": np.array([[0], [2]])})
    with pytest.raises(ValueError, match="labels"):
        datasets.load_odds("labels", odds_dir)


def test_odds_matlab_v73(odds_dir):
    # A v7.3 file is HDF5; its 128-byte MATLAB header announces version 0x0200.
    (odds_dir / "hdf.mat").write_bytes(b"MATLAB 7.3 MAT-file".ljust(124) + b"\x00\x02IM")
    with pytest.raises(ValueError, match="hdf.mat.*v7.3"):
        datasets.load_odds("hdf", odds_dir)


# --------------------------------------------------------------------------------------------
# ADBench
# --------------------------------------------------------------------------------------------


@pytest.fixture
def adbench_root(tmp_path):
    folder = tmp_path / "adbench" / "Classical"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for stem in ("4_breastw", "10_cover", "2_annthyroid"):
        np.savez(folder / f"{stem}.npz", X=rng.normal(size=(8, 2)).astype(np.float32),
                 y=np.array([0, 0, 0, 0, 0, 0, 1, 1], dtype=np.int32))
    return tmp_path


def test_adbench(adbench_root):
    assert datasets.list_adbench(adbench_root) == ["2_annthyroid", "4_breastw", "10_cover"]
    X, y = datasets.load_adbench("4_breastw", adbench_root)
    assert X.shape == (8, 2) and X.dtype == np.float64
    assert y.dtype == np.int64 and y.sum() == 2
    X2, _ = datasets.load_adbench("BreastW", adbench_root / "adbench" / "Classical")
    np.testing.assert_array_equal(X, X2)


def test_adbench_errors(adbench_root):
    folder = adbench_root / "adbench" / "Classical"
    with pytest.raises(FileNotFoundError, match="nope.*4_breastw"):
        datasets.load_adbench("nope", adbench_root)
    np.savez(folder / "5_breastw.npz", X=np.zeros((2, 2)), y=np.zeros(2))
    with pytest.raises(ValueError, match="ambiguous"):
        datasets.load_adbench("breastw", adbench_root)
    np.savez(folder / "6_objects.npz", X=np.array([[None]], dtype=object), y=np.zeros(1))
    with pytest.raises(ValueError, match="6_objects.npz"):
        datasets.load_adbench("objects", adbench_root)
    (folder / "7_junk.npz").write_bytes(b"junk")
    with pytest.raises(ValueError, match="7_junk.npz"):
        datasets.load_adbench("junk", adbench_root)
    np.savez(folder / "8_nolabels.npz", X=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="lacks"):
        datasets.load_adbench("nolabels", adbench_root)


# --------------------------------------------------------------------------------------------
# Splits
# --------------------------------------------------------------------------------------------


@pytest.fixture
def labelled():
    X = np.arange(200, dtype=float).reshape(100, 2)
    y = np.repeat(np.arange(5), 20)
    return X, y


def test_one_class_split(labelled):
    X, y = labelled
    X_fit, X_eval, y_eval = datasets.one_class_split(X[::2], y[::2], X[1::2], y[1::2], 3)
    assert X_fit.shape == (10, 2) and np.all(X_fit[:, 0] // 40 == 3)
    np.testing.assert_array_equal(X_eval, X[1::2])
    assert y_eval.dtype == np.int64 and y_eval.tolist() == (y[1::2] != 3).astype(int).tolist()


def test_one_class_split_errors(labelled):
    X, y = labelled
    with pytest.raises(ValueError, match="normal_class=7"):
        datasets.one_class_split(X, y, X, y, 7)
    with pytest.raises(ValueError, match="test split"):
        datasets.one_class_split(X, y, X, y[:5], 0)


@pytest.mark.parametrize("ratio, n_anomalies", [(0.05, 1), (0.2, 5), (0.5, 20), (0.001, 1)])
def test_unbalanced_split(labelled, ratio, n_anomalies):
    X, y = labelled
    X_fit, y_fit = datasets.unbalanced_split(X, y, 1, ratio, random_state=0)
    assert X_fit.shape == (20 + n_anomalies, 2) and y_fit.dtype == np.int64
    assert y_fit.sum() == n_anomalies
    labels = y[(X_fit[:, 0] // 2).astype(int)]
    np.testing.assert_array_equal(y_fit, (labels != 1).astype(int))


def test_unbalanced_split_keeps_all_normals_and_shuffles(labelled):
    X, y = labelled
    X_fit, y_fit = datasets.unbalanced_split(X, y, 1, 0.2, random_state=0)
    assert sorted(X_fit[y_fit == 0, 0]) == sorted(X[y == 1, 0])
    assert not np.all(y_fit[:20] == 0)


def test_unbalanced_split_reproducible_without_global_rng(labelled):
    X, y = labelled
    state = np.random.get_state()[1].copy()
    first = datasets.unbalanced_split(X, y, 0, 0.2, random_state=42)
    np.random.seed(123)  # the global generator must have no influence
    second = datasets.unbalanced_split(X, y, 0, 0.2, random_state=42)
    np.random.seed(None)
    third = datasets.unbalanced_split(X, y, 0, 0.2, random_state=7)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], third[0])
    np.random.set_state(("MT19937", state, 624))
    before = np.random.get_state()[1].copy()
    datasets.unbalanced_split(X, y, 0, 0.2)
    np.testing.assert_array_equal(np.random.get_state()[1], before)


@pytest.mark.parametrize("ratio", [0, -0.1, 0.6, 1, True, "0.1", None])
def test_unbalanced_split_invalid_ratio(labelled, ratio):
    X, y = labelled
    with pytest.raises(ValueError, match="anomaly_ratio"):
        datasets.unbalanced_split(X, y, 0, ratio)


def test_unbalanced_split_not_enough_anomalies():
    X, y = np.zeros((12, 1)), np.array([0] * 10 + [1] * 2)
    with pytest.raises(ValueError, match="needs 10 anomalies"):
        datasets.unbalanced_split(X, y, 0, 0.5)


# --------------------------------------------------------------------------------------------
# The shared benchmark data, when present (quick loads only)
# --------------------------------------------------------------------------------------------

needs_shared = functools.partial(pytest.mark.skipif, reason="shared benchmark data not present")


@needs_shared(not (SHARED_DATA / "odds" / "wbc.mat").is_file())
def test_shared_odds_wbc():
    X, y = datasets.load_odds("wbc", SHARED_DATA)
    assert X.shape == (378, 30) and y.sum() == 21
    assert "wbc" in datasets.list_odds(SHARED_DATA)


@needs_shared(not (SHARED_DATA / "adbench" / "Classical" / "4_breastw.npz").is_file())
def test_shared_adbench_breastw():
    X, y = datasets.load_adbench("breastw", SHARED_DATA)
    assert X.shape == (683, 9) and y.sum() == 239
    assert datasets.list_adbench(SHARED_DATA)[0] == "1_ALOI"


@needs_shared(not (SHARED_DATA / "mnist" / "t10k-images-idx3-ubyte.gz").is_file())
def test_shared_mnist_verified():
    X_train, y_train, X_test, y_test = datasets.load_mnist(SHARED_DATA)
    assert X_train.shape == (60000, 28, 28) and X_test.shape == (10000, 28, 28)
    assert y_train[:5].tolist() == [5, 0, 4, 1, 9]
