"""Tests of the benchmark command line (skmcad.benchmark): protocols, runs, reports."""

import csv
import sys
import types

import numpy as np
import pandas as pd
import pytest
import scipy.io
from sklearn.model_selection import train_test_split

from skmcad.benchmark import main
from skmcad.benchmark import detectors as bench_detectors
from skmcad.benchmark.cli import build_parser, detector_names
from skmcad.benchmark.measure import PeakRSS
from skmcad.benchmark.protocols import (
    Digits, choose_labelled_classes, to_unit_float, unbalanced_training_set)
from skmcad.benchmark.report import markdown_table


def _rows(out_dir):
    with open(out_dir / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


class _Raises:
    """A detector whose fit always fails."""

    def fit(self, X, y=None):
        raise RuntimeError("boom at fit")


class _ImageMeans:
    """Placeholder of an image detector: score = distance to the mean training image."""

    def fit(self, X, y=None):
        assert X.ndim == 3, "image detectors get images in their natural layout"
        self.mean_ = X.mean(axis=0)
        return self

    def decision_function(self, X):
        return ((X - self.mean_) ** 2).sum(axis=(1, 2))


def test_digits_end_to_end(tmp_path, capsys):
    status = main(["--detectors", "iforest,ecod", "--classes", "0,1", "--out", str(tmp_path)])
    assert status == 0
    for name in ("results.csv", "results.md", "auroc.png"):
        assert (tmp_path / name).stat().st_size > 0
    rows = _rows(tmp_path)
    assert sorted((r["detector"], r["subset"]) for r in rows) == [
        ("ecod", "0"), ("ecod", "1"), ("iforest", "0"), ("iforest", "1")]
    assert all(r["status"] == "ok" and r["dataset"] == "digits" for r in rows)
    for row in rows:
        assert 0.0 <= float(row["auroc"]) <= 1.0 and 0.0 <= float(row["aucpr"]) <= 1.0
        assert float(row["fit_seconds"]) >= 0 and float(row["throughput"]) > 0
        assert float(row["peak_rss_mb"]) >= 0
        # 50/50 split of 1797 digits: the whole test half is scored.
        assert int(row["n_test"]) == 899 and int(row["n_anomalies"]) < 899
    # Digits one-class is easy for IForest on raw pixels (AUROC ~0.97-1.0 with seed 0).
    assert all(float(r["auroc"]) > 0.85 for r in rows if r["detector"] == "iforest")
    printed = capsys.readouterr().out
    assert "| **mean** |" in printed and "iforest" in printed
    text = (tmp_path / "results.md").read_text()
    assert "python -m skmcad.benchmark --detectors iforest,ecod" in text
    assert "torch device" in text and "## Summary" in text


def test_failing_detector_is_recorded_and_run_goes_on(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_detectors.REGISTRY, "boom",
                        bench_detectors.DetectorSpec(lambda ctx: _Raises()))
    main(["--detectors", "boom,iforest", "--classes", "2", "--out", str(tmp_path)])
    rows = {r["detector"]: r for r in _rows(tmp_path)}
    assert rows["boom"]["status"] == "failed"
    assert "RuntimeError: boom at fit" in rows["boom"]["error"]
    assert rows["boom"]["auroc"] == ""
    assert rows["iforest"]["status"] == "ok" and float(rows["iforest"]["auroc"]) > 0.5
    text = (tmp_path / "results.md").read_text()
    assert "## Failures" in text and "boom at fit" in text


def test_image_detectors_get_images_and_baselines_rows(tmp_path, monkeypatch):
    monkeypatch.setitem(bench_detectors.REGISTRY, "means", bench_detectors.DetectorSpec(
        lambda ctx: _ImageMeans(), flat_input=False, warm_up=False))
    main(["--detectors", "means", "--classes", "0", "--out", str(tmp_path)])
    (row,) = _rows(tmp_path)
    assert row["status"] == "ok", row["error"]
    assert float(row["auroc"]) > 0.8


def _write_tiny_mat(folder, name="tiny", n_normal=150, n_outliers=25):
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(size=(n_normal, 4)), rng.normal(6.0, 1.0, size=(n_outliers, 4))])
    y = np.r_[np.zeros(n_normal), np.ones(n_outliers)].reshape(-1, 1)
    scipy.io.savemat(folder / f"{name}.mat", {"X": X, "y": y})


def test_odds_protocol_on_a_tiny_mat_file(tmp_path):
    _write_tiny_mat(tmp_path)
    out = tmp_path / "out"
    main(["--dataset", "odds", "--data-dir", str(tmp_path), "--classes", "tiny",
          "--seeds", "2", "--detectors", "iforest,knn", "--out", str(out)])
    rows = _rows(out)
    assert sorted((r["detector"], r["seed"]) for r in rows) == [
        ("iforest", "0"), ("iforest", "1"), ("knn", "0"), ("knn", "1")]
    # PyOD's benchmark split: 40 % test, not stratified (seed 0 draws 11 of the 25 outliers,
    # seed 1 draws 5)
    y = np.r_[np.zeros(150), np.ones(25)]
    for row in rows:
        assert row["status"] == "ok" and row["subset"] == "tiny"
        y_test = train_test_split(y, test_size=0.4, random_state=int(row["seed"]))[1]
        assert int(row["n_test"]) == 70 and int(row["n_anomalies"]) == int(y_test.sum())
        # Outliers in the training part form a cluster (unsupervised protocol): KNN ~0.9;
        # with 20 of the 25 in the training part (seed 1) precision@n falls to 0.2.
        assert float(row["auroc"]) > 0.8 and float(row["precision_at_n"]) > 0.1


def test_max_test_subsamples_stratified(tmp_path):
    _write_tiny_mat(tmp_path)
    main(["--dataset", "odds", "--data-dir", str(tmp_path), "--classes", "tiny",
          "--seeds", "1", "--detectors", "ecod", "--max-train", "50", "--max-test", "35",
          "--out", str(tmp_path / "out")])
    (row,) = _rows(tmp_path / "out")
    # the unstratified 40 % holds 11 of the 25 outliers; half of it, stratified, keeps 6
    assert (row["n_fit"], row["n_test"], row["n_anomalies"]) == ("50", "35", "6")


def test_missing_data_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--dataset", "odds", "--data-dir", str(tmp_path / "nowhere"),
              "--out", str(tmp_path)])
    assert exit_info.value.code == 1
    assert "ODDS folder not found" in capsys.readouterr().err


def test_unknown_detector_is_a_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["--detectors", "iforest,nope", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_ablation_flag_adds_mcad_and_its_ablations():
    parser = build_parser()
    args = parser.parse_args(["--detectors", "iforest", "--ablation"])
    assert detector_names(args, parser) == [
        "iforest", "mcad", "mcad-no-memory", "mcad-learned-memory", "mcad-untrained-memory",
        "mcad-one-scale", "mcad-no-stage2", "mcad-frozen-backbone", "mcad-no-image-scale"]


def test_variants_flag_adds_mcad_and_its_variants():
    parser = build_parser()
    args = parser.parse_args(["--detectors", "iforest", "--variants"])
    assert detector_names(args, parser) == [
        "iforest", "mcad", "mcad-grid", "mcad-gaussian", "mcad-hybrid", "mcad-conv"]


@pytest.mark.parametrize("name", sorted(bench_detectors.VARIANTS))
def test_variants_build_mcad_with_their_part(name):
    ctx = bench_detectors.BuildContext(n_features=64, random_state=0, kind="image")
    params = bench_detectors.REGISTRY[name].build(ctx).get_params()
    assert all(params[k] == v for k, v in bench_detectors.VARIANTS[name].items())


def test_unified_digits_fits_on_the_other_classes(tmp_path):
    main(["--unified", "--detectors", "iforest", "--classes", "3", "--out", str(tmp_path)])
    (row,) = _rows(tmp_path)
    assert row["status"] == "ok" and row["subset"] == "3"
    # the 50/50 split of 1797 digits: 898 training digits, about a tenth of them 3s, and
    # the test half's 3s are its only anomalies
    assert 780 <= int(row["n_fit"]) <= 830 and 70 <= int(row["n_anomalies"]) <= 110
    assert int(row["n_test"]) == 899
    assert "Unified protocol" in (tmp_path / "results.md").read_text()


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "odds", "--unified"], "no unified protocol for odds"),
    (["--unified", "--anomaly-ratio", "0.05"], "separate protocols"),
])
def test_unified_refuses_what_it_does_not_apply_to(argv, message, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(argv + ["--out", str(tmp_path)])
    assert message in capsys.readouterr().err


def test_mcad_params_must_be_a_json_object(capsys):
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--mcad-params", "[1, 2]"])
    args = build_parser().parse_args(["--mcad-params", '{"n_scales": 1}'])
    assert args.mcad_params == {"n_scales": 1}


def test_markdown_table_pads_and_aligns():
    table = markdown_table(["subset", "iforest"], [["0", "0.912"], ["**mean**", "0.9"]])
    assert table.splitlines() == [
        "| subset   | iforest |",
        "|:---------|--------:|",
        "| 0        |   0.912 |",
        "| **mean** |     0.9 |",
    ]
    assert markdown_table(["a", "b"], [["x", "y"]], align=["r", "l"]).splitlines()[1] == (
        "|----:|:----|")
    with pytest.raises(ValueError):
        markdown_table(["a", "b"], [["only one"]])


def test_peak_rss_sees_a_large_allocation():
    with PeakRSS() as peak:
        block = np.ones(2**24)  # 128 MiB, touched
        block[::512] += 1.0
    assert peak.peak_mb > 100


def test_adbench_protocol_on_a_tiny_npz_file(tmp_path):
    rng = np.random.default_rng(1)
    X = np.vstack([rng.normal(size=(180, 3)), rng.uniform(-9, 9, size=(20, 3))])
    y = np.r_[np.zeros(180), np.ones(20)]
    np.savez(tmp_path / "7_tiny.npz", X=X, y=y)
    out = tmp_path / "out"
    main(["--dataset", "adbench", "--data-dir", str(tmp_path), "--detectors", "iforest",
          "--out", str(out)])
    rows = _rows(out)
    assert [(r["subset"], r["seed"]) for r in rows] == [("7_tiny", "0"), ("7_tiny", "1"),
                                                        ("7_tiny", "2")]  # three seeds
    assert all(r["n_test"] == "60" and r["n_anomalies"] == "6" for r in rows)  # 30 %
    assert all(float(r["auroc"]) > 0.8 for r in rows)


def _fake_presets(monkeypatch, preset_params):
    """skmcad.presets with ``preset_params`` replaced (and the backbone list kept)."""
    from skmcad.presets import PRETRAINED_BACKBONES

    fake_presets = types.ModuleType("skmcad.presets")
    fake_presets.preset_params = preset_params
    fake_presets.PRETRAINED_BACKBONES = PRETRAINED_BACKBONES
    monkeypatch.setitem(sys.modules, "skmcad.presets", fake_presets)


def test_mcad_parameters_preset_then_user_then_ablation(monkeypatch):
    _fake_presets(monkeypatch, lambda preset, kind: {"n_scales": 3, "width": 8, "kind": kind})
    ctx = bench_detectors.BuildContext(n_features=64, random_state=7, kind="image", n_jobs=2,
                                       mcad_params={"width": 4, "n_scales": 2})
    params = bench_detectors.mcad_params(ctx, bench_detectors.ABLATIONS["mcad-one-scale"])
    assert params == {"n_scales": 1, "width": 4, "kind": "image", "random_state": 7,
                      "n_jobs": 2}
    ctx = bench_detectors.BuildContext(n_features=64, random_state=7, n_jobs=2,
                                       mcad_params={"n_jobs": 1})
    assert bench_detectors.mcad_params(ctx)["n_jobs"] == 1  # the user's parameters win


# A configuration small enough for a seconds-long fit (as tests/conftest.py's TINY), whatever
# backbone the CPU preset picks.
TINY_MCAD = ('{"backbone": "resnet", "input_size": null, "memory_size": 8, "width": 4, '
             '"n_scales": 2, "stage1_epochs": 2, "stage2_epochs": 1, "batch_size": 32}')


def test_mcad_end_to_end_on_one_digit(tmp_path):
    main(["--detectors", "mcad", "--classes", "0", "--max-train", "48", "--max-test", "120",
          "--mcad-params", TINY_MCAD, "--out", str(tmp_path)])
    (row,) = _rows(tmp_path)
    assert row["status"] == "ok", row["error"]
    assert 0.0 <= float(row["auroc"]) <= 1.0  # too short a fit to expect a good score
    assert (row["n_fit"], row["n_test"]) == ("48", "120")
    assert "MCADDetector(" in row["params"] and "stage1_epochs=2" in row["params"]


@pytest.mark.parametrize("name", sorted(bench_detectors.ABLATIONS))
def test_ablations_build_mcad_with_one_part_switched_off(name):
    ctx = bench_detectors.BuildContext(n_features=64, random_state=0, kind="image")
    detector = bench_detectors.REGISTRY[name].build(ctx)
    params = detector.get_params()
    for key, value in bench_detectors.ABLATIONS[name].items():
        assert params[key] == value


# --- unbalanced protocol (--anomaly-ratio) ---------------------------------------------------


class _RecordsFit:
    """A detector recording whether fit got labels; scores = mean pixel."""

    calls = []

    def fit(self, X, y=None):
        type(self).calls.append(None if y is None else np.asarray(y).copy())
        return self

    def decision_function(self, X):
        return X.mean(axis=1)


def test_unbalanced_digits_end_to_end(tmp_path, capsys):
    status = main(["--anomaly-ratio", "0.05", "--classes", "0", "--max-train", "60",
                   "--max-test", "200", "--detectors", "hgb,mcad-one-class,iforest",
                   "--mcad-params", TINY_MCAD, "--out", str(tmp_path)])
    assert status == 0
    rows = {r["detector"]: r for r in _rows(tmp_path)}
    assert list(rows) == ["hgb", "mcad-one-class", "iforest"]
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        assert 0.0 <= float(row["auroc"]) <= 1.0
        assert float(row["anomaly_ratio"]) == 0.05 and row["dataset"] == "digits"
        # --max-train 60 at 5 %: 57 normal images and round(0.05 * 57 / 0.95) = 3 anomalies.
        assert (row["n_fit"], row["n_labelled"], row["n_test"]) == ("60", "3", "200")
        labelled = [int(c) for c in row["labelled_classes"].split()]
        assert len(labelled) == 5 and 0 not in labelled
    assert "HGBScores(" in rows["hgb"]["params"]
    assert "setting='one-class'" in rows["mcad-one-class"]["params"]
    text = (tmp_path / "results.md").read_text()
    assert text.startswith("# skmcad benchmark: digits, unbalanced, anomaly ratio 0.05")
    assert "## Labelled anomalies of the training data" in text
    assert "- 0 (seed 0): 3 labelled anomalies from classes" in text


def test_unbalanced_mcad_end_to_end(tmp_path):
    main(["--anomaly-ratio", "0.05", "--classes", "0", "--max-train", "48",
          "--max-test", "120", "--detectors", "mcad", "--mcad-params", TINY_MCAD,
          "--out", str(tmp_path)])
    (row,) = _rows(tmp_path)
    if row["error"].startswith("NotImplementedError"):
        raise NotImplementedError(row["error"])
    assert row["status"] == "ok", row["error"]
    assert 0.0 <= float(row["auroc"]) <= 1.0
    assert "setting='unbalanced'" in row["params"]


def test_only_detectors_using_labels_get_them(tmp_path, monkeypatch):
    _RecordsFit.calls = []
    for name, labels in (("ignores", "ignored"), ("uses", "used"), ("requires", "required")):
        monkeypatch.setitem(bench_detectors.REGISTRY, name, bench_detectors.DetectorSpec(
            lambda ctx: _RecordsFit(), warm_up=False, labels=labels))
    main(["--anomaly-ratio", "0.02", "--classes", "1", "--detectors", "ignores,uses,requires",
          "--out", str(tmp_path / "unbalanced")])
    ignored, used, required = _RecordsFit.calls
    assert ignored is None
    assert used is not None and np.array_equal(used, required) and used.sum() >= 1
    _RecordsFit.calls = []
    main(["--classes", "1", "--detectors", "ignores,uses", "--out", str(tmp_path / "one")])
    assert _RecordsFit.calls == [None, None]  # one-class protocol: no labels for anyone


def test_unbalanced_training_set_draws_anomalies_from_the_chosen_classes():
    y = np.repeat(np.arange(10), 200)
    X = np.stack([y, np.arange(len(y))], axis=1)  # column 0 tells each sample's class
    X_fit, y_fit, labelled = unbalanced_training_set(X, y, 3, 0.05, n_labelled_classes=4,
                                                     seed=1)
    assert len(labelled) == 4 and 3 not in labelled
    classes = X_fit[:, 0]
    assert np.array_equal(y_fit, (classes != 3).astype(int))
    assert set(classes[y_fit == 1]) <= set(labelled.tolist())
    assert (classes == 3).sum() == 200  # every normal training sample is kept
    assert y_fit.sum() == round(0.05 * 200 / 0.95)  # 11 of 211: the ratio asked for
    assert len(np.unique(X_fit[:, 1])) == len(X_fit)  # drawn without replacement
    # The same classes at another ratio; other seeds and normal classes draw others.
    assert np.array_equal(unbalanced_training_set(X, y, 3, 0.01, 4, seed=1)[2], labelled)
    draws = {tuple(choose_labelled_classes(y, c, 4, random_state=[s, c]))
             for s in range(3) for c in range(10)}
    assert len(draws) > 20
    # --max-train cuts the normal samples, the ratio stays.
    X_small, y_small, _ = unbalanced_training_set(X, y, 3, 0.05, 4, seed=1, max_train=100)
    assert (len(y_small), y_small.sum()) == (100, 5)
    # None: anomalies from every other class.
    assert len(choose_labelled_classes(y, 3, None)) == 9
    with pytest.raises(ValueError, match="other classes"):
        choose_labelled_classes(y, 3, 10)


def test_load_tasks_loads_the_classes_named_and_yields_one_task_per_class_and_seed():
    tasks = list(Digits().load_tasks(" 4, 7", seeds=(0, 1)))
    assert [(t.subset, t.seed) for t in tasks] == [("4", 0), ("4", 1), ("7", 0), ("7", 1)]
    with pytest.raises(ValueError, match="no class"):
        Digits().load_tasks("4,12")


def test_unbalanced_digits_tasks_keep_the_test_split_whole():
    one_class, unbalanced = Digits(), Digits(anomaly_ratio=0.05, n_labelled_classes=3)
    one_class.load(["4"])
    unbalanced.load(["4"])
    (plain,) = one_class.tasks(["4"], [0])
    (task,) = unbalanced.tasks(["4"], [0])
    assert plain.y_fit is None and task.y_fit is not None
    assert np.array_equal(task.X_eval, plain.X_eval) and np.array_equal(task.y_eval,
                                                                        plain.y_eval)
    X_train, y_train, _, y_test = unbalanced._data
    assert len(task.y_eval) == len(y_test)
    # Labelled anomalies come from the 3 drawn classes only; the test split's anomalies
    # include the 6 classes never seen labelled.
    label_of = {image.tobytes(): label for image, label in
                zip(to_unit_float(X_train), y_train)}
    assert len(task.labelled_classes) == 3 and 4 not in task.labelled_classes
    fit_classes = np.array([label_of[image.tobytes()] for image in task.X_fit])
    assert np.array_equal(task.y_fit, (fit_classes != 4).astype(int))
    assert set(fit_classes[task.y_fit == 1]) <= set(task.labelled_classes)
    assert task.y_fit.sum() == round(0.05 * (fit_classes == 4).sum() / 0.95)
    unseen = set(y_test[task.y_eval == 1]) - set(task.labelled_classes)
    assert len(unseen) == 6
    assert task.X_fit.dtype == np.float32 and 0.0 <= task.X_fit.min() <= task.X_fit.max() <= 1


@pytest.mark.parametrize("name", ["xgbod", "devnet", "hgb"])
def test_supervised_detectors_are_refused_without_anomaly_ratio(tmp_path, capsys, name):
    with pytest.raises(SystemExit) as exit_info:
        main(["--detectors", f"iforest,{name}", "--out", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"{name} need labelled anomalies" in err and "--anomaly-ratio" in err


@pytest.mark.parametrize("argv", [
    ["--anomaly-ratio", "0"], ["--anomaly-ratio", "0.7"],
    ["--labelled-classes", "3"],  # without --anomaly-ratio
    ["--dataset", "odds", "--anomaly-ratio", "0.01"],  # no unbalanced variant
])
def test_unbalanced_options_misused_are_usage_errors(tmp_path, argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv + ["--detectors", "iforest", "--out", str(tmp_path)])
    assert exit_info.value.code == 2


def test_too_many_labelled_classes_exits_with_a_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--anomaly-ratio", "0.01", "--labelled-classes", "10", "--detectors", "hgb",
              "--out", str(tmp_path)])
    assert exit_info.value.code == 1
    assert "between 1 and 9" in capsys.readouterr().err


def test_unbalanced_default_detectors_and_output_folder(monkeypatch):
    from dataclasses import replace

    # as where the benchmark extra (xgboost) is installed; without it, see the test below
    monkeypatch.setitem(bench_detectors.REGISTRY, "xgbod",
                        replace(bench_detectors.REGISTRY["xgbod"], requires=()))
    parser = build_parser()
    args = parser.parse_args(["--anomaly-ratio", "0.01"])
    assert detector_names(args, parser) == ["mcad", "mcad-one-class", "xgbod", "devnet", "hgb"]
    args = parser.parse_args([])
    assert detector_names(args, parser) == list(bench_detectors.DEFAULT_DETECTORS)


def test_mcad_setting_follows_the_protocol(monkeypatch):
    _fake_presets(monkeypatch, lambda preset, kind: {"width": 8})
    ctx = bench_detectors.BuildContext(n_features=64, random_state=1, kind="image",
                                       anomaly_ratio=0.01)
    assert bench_detectors.mcad_params(ctx)["setting"] == "unbalanced"
    assert bench_detectors.mcad_params(ctx, one_class=True)["setting"] == "one-class"
    ablation = bench_detectors.mcad_params(ctx, bench_detectors.ABLATIONS["mcad-one-scale"])
    assert ablation["setting"] == "unbalanced" and ablation["n_scales"] == 1
    assert "setting" not in bench_detectors.mcad_params(
        bench_detectors.BuildContext(n_features=64, random_state=1, kind="image"))


def _tiny_labelled(n=80, n_anomalies=8, d=12):
    rng = np.random.default_rng(0)
    X = rng.random((n, d)).astype(np.float32)
    y = np.zeros(n, dtype=np.int64)
    y[:n_anomalies] = 1
    X[y == 1] = np.clip(X[y == 1] + 0.6, 0, 1)  # anomalies: brighter rows
    return X, y


@pytest.mark.parametrize("name", ["xgbod", "devnet", "hgb"])
def test_supervised_registry_entries_fit_on_a_tiny_array(name):
    if name == "xgbod":
        pytest.importorskip("xgboost")
    X, y = _tiny_labelled()
    spec = bench_detectors.REGISTRY[name]
    assert spec.labels == "required" and spec.flat_input
    ctx = bench_detectors.BuildContext(n_features=X.shape[1], random_state=0,
                                       anomaly_ratio=0.1)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # HGB's OpenMP threads crawl on busy shared cores
        detector = spec.build(ctx).fit(X, y)
        scores = detector.decision_function(X)
    assert scores.shape == (len(X),) and np.isfinite(scores).all()
    assert scores[y == 1].mean() > scores[y == 0].mean()
    assert bench_detectors.describe(detector).endswith(")")


def test_devnet_is_seeded_and_leaves_torch_generator_alone():
    import torch

    X, y = _tiny_labelled()
    ctx = bench_detectors.BuildContext(n_features=X.shape[1], random_state=3)

    def fit_and_score():
        detector = bench_detectors.REGISTRY["devnet"].build(ctx).set_params(epochs=2)
        return detector.fit(X, y).decision_function(X)

    state = torch.get_rng_state()
    first = fit_and_score()
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_allclose(fit_and_score(), first)


def test_thread_benchmark_writes_one_row_per_input_load_and_thread_count(tmp_path):
    from skmcad.benchmark import threads

    threads.main(["--out", str(tmp_path), "--n-jobs", "1", "--fit-images", "20",
                  "--score-images", "20", "--rows", "100"])
    table = pd.read_csv(tmp_path / "results.csv")
    assert sorted(zip(table["input"], table["load"])) == [
        ("image", "1 core busy"), ("image", "idle"), ("tabular", "1 core busy"),
        ("tabular", "idle")]
    assert (table["n_jobs"] == 1).all() and (table["fit_s"] > 0).all()
    assert (table["samples_per_s"] > 0).all()


def test_auroc_chart_axis_shows_differences_and_names_failed_runs(tmp_path):
    from skmcad.benchmark import report

    rows = [dict(subset=s, seed=seed, detector=d, status="ok", auroc=v + 0.01 * seed)
            for s in ("a", "b") for seed in range(2) for d, v in (("mcad", 0.88), ("knn", 0.96))]
    rows += [dict(subset=s, seed=0, detector="xgbod", status="failed", auroc=np.nan)
             for s in ("a", "b")]
    results = pd.DataFrame(rows)
    assert report._axis_floor(report.per_subset_means(results)) == 0.8  # not 0: 0.88 vs 0.96
    assert report._legend_label(results, "xgbod") == "xgbod (failed 2/2)"
    assert report._legend_label(results, "mcad") == "mcad"
    report.plot_auroc(results, tmp_path / "auroc.png", "a title " * 30)
    assert (tmp_path / "auroc.png").stat().st_size > 0


@pytest.mark.parametrize("flags, expected", [([], False), (["--download"], True)])
def test_download_flag_reaches_the_loader(monkeypatch, tmp_path, flags, expected):
    import skmcad.datasets

    calls = []

    def fake_load_cifar10(data_dir=None, download=False, verify=True):
        calls.append(download)
        raise FileNotFoundError("no CIFAR-10 here")

    monkeypatch.setattr(skmcad.datasets, "load_cifar10", fake_load_cifar10)
    with pytest.raises(SystemExit):
        main(["--dataset", "cifar10", "--data-dir", str(tmp_path), "--out", str(tmp_path),
              *flags])
    assert calls == [expected]


def test_detectors_missing_an_optional_package_are_left_out_or_refused(monkeypatch, capsys):
    from dataclasses import replace

    spec = replace(bench_detectors.REGISTRY["xgbod"], requires=(("no_such_module", "no-such"),))
    monkeypatch.setitem(bench_detectors.REGISTRY, "xgbod", spec)
    parser = build_parser()
    defaults = detector_names(parser.parse_args(["--anomaly-ratio", "0.01"]), parser)
    assert "xgbod" not in defaults and "mcad" in defaults
    assert "xgbod needs no-such: pip install no-such" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # named by the user: refused before any run
        detector_names(parser.parse_args(["--anomaly-ratio", "0.01", "--detectors", "xgbod"]),
                       parser)
