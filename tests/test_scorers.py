"""The stage-2 scorers: each checked against a direct computation from its definition."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.scorers import (ConvScorer, DeviationScorer, GaussianScorer, HybridScorer,
                            build_scorer)
from skmcad.frozen_features import FrozenFeatures
from skmcad.stage2 import stage2_batch, stage2_loss, train_stage2
from skmcad._loop import StageConfig

CHANNELS = [3, 5]


def batch(n, seed, shift=0.0):
    """Deviation maps and feature maps of two scales (4x4 and 2x2 grids)."""
    g = torch.Generator().manual_seed(seed)
    features = [torch.randn(n, 3, 4, 4, generator=g, dtype=torch.float64) + shift,
                torch.randn(n, 5, 2, 2, generator=g, dtype=torch.float64) + shift]
    maps = [torch.rand(n, 4, 4, generator=g, dtype=torch.float64),
            torch.rand(n, 2, 2, generator=g, dtype=torch.float64)]
    return maps, features


@pytest.mark.parametrize("normalise", [True, False])
def test_gaussian_score_is_the_direct_computation(normalise):
    scorer = GaussianScorer(CHANNELS, normalise=normalise).double()
    held_out = [batch(7, 0), batch(5, 1)]
    scorer.fit_statistics(held_out)

    def unit(v):
        return v / np.linalg.norm(v, axis=-1, keepdims=True) if normalise else v

    # descriptors of the held-out inputs, one scale at a time, with numpy
    expected_scores = np.zeros(4)
    maps, features = batch(4, 2)
    for s in range(2):
        u = np.concatenate([unit(f[s].mean(dim=(2, 3)).numpy()) for _, f in held_out])
        centre = u.mean(0)
        sigma = np.mean([np.sum((row - centre) ** 2) for row in u])
        new = unit(features[s].mean(dim=(2, 3)).numpy())
        expected_scores += np.array([np.sum((row - centre) ** 2) / sigma for row in new]) / 2
    expected_scores = 1 - np.exp(-expected_scores)
    np.testing.assert_allclose(scorer(maps, features).numpy(), expected_scores, rtol=1e-10)
    # the map: the same Gaussian per position of the finest grid (4x4, no resizing there)
    vectors = np.concatenate([unit(f[0].permute(0, 2, 3, 1).reshape(-1, 3).numpy())
                              for _, f in held_out])
    centre = vectors.mean(0)
    sigma = np.mean(np.sum((vectors - centre) ** 2, axis=1))
    query = unit(features[0][1, :, 2, 3].numpy())
    fine = np.sum((query - centre) ** 2) / sigma
    assert scorer.anomaly_maps(maps, features, (4, 4)).shape == (4, 4, 4)
    # a scorer whose two scales are the finest one: its map is that Gaussian, unmixed
    single = GaussianScorer([3, 3], normalise=normalise).double()
    single.fit_statistics([(m, [f[0], f[0]]) for m, f in held_out])
    same = single.anomaly_maps(maps, [features[0], features[0]], (4, 4))
    np.testing.assert_allclose(-np.log(1 - same[1, 2, 3].item()), fine, rtol=1e-10)


def test_gaussian_scores_are_bounded_and_grow_with_distance():
    scorer = GaussianScorer(CHANNELS, normalise=False).double()
    scorer.fit_statistics([batch(20, 0)])
    near = scorer(*batch(10, 3))
    far = scorer(*batch(10, 3, shift=1.5))
    assert ((0 <= near) & (near < 1)).all() and ((0 <= far) & (far < 1)).all()
    assert far.min() > near.max()
    assert not scorer.trainable and not list(scorer.parameters())


def mean_standardised_map(scorer, maps):
    """The mean of the two scales' standardised deviations on the 4x4 grid, by hand."""
    z = [(d - m) / s for d, m, s in zip(maps, scorer.map_mean, scorer.map_std)]
    coarse = torch.nn.functional.interpolate(z[1][:, None], size=(4, 4), mode="bilinear",
                                             align_corners=False)[:, 0]
    return (z[0] + coarse) / 2


def test_hybrid_outputs_and_start():
    scorer = HybridScorer(CHANNELS).double()
    scorer.fit_statistics([batch(20, 0)])
    maps, features = batch(6, 1)
    assert scorer(maps, features).shape == (6,)
    assert scorer.dense_map(maps, features).shape == (6, 4, 4)  # the finest scale's grid
    assert scorer.anomaly_maps(maps, features, (8, 8)).shape == (6, 8, 8)
    # heads start at zero: the map is the mean of the standardised deviations, upsampled
    torch.testing.assert_close(scorer.dense_map(maps, features),
                               mean_standardised_map(scorer, maps))


def test_conv_outputs_and_start():
    scorer = ConvScorer(CHANNELS).double()
    scorer.fit_statistics([batch(20, 0)])
    maps, features = batch(6, 1)
    assert scorer(maps, features).shape == (6,)
    assert scorer.dense_map(maps, features).shape == (6, 4, 4)
    assert scorer.anomaly_maps(maps, features, (8, 8)).shape == (6, 8, 8)
    # the CNN's last layer starts at zero: the map is the mean of the standardised deviations
    torch.testing.assert_close(scorer.dense_map(maps, features),
                               mean_standardised_map(scorer, maps))


def crossed_scales(n, seed):
    """Two 4x4 deviation maps, each standard normal at every position: on normal inputs
    they are equal, on anomalous ones independent. Every statistic of one scale is
    distributed alike on both, so no monotone mix of per-scale statistics tells them apart."""
    g = torch.Generator().manual_seed(seed)
    first = torch.randn(2 * n, 4, 4, generator=g, dtype=torch.float64)
    second = first.clone()
    second[n:] = torch.randn(n, 4, 4, generator=g, dtype=torch.float64)
    features = [torch.zeros(2 * n, c, 4, 4, dtype=torch.float64) for c in (3, 3)]
    targets = torch.cat([torch.zeros(n), torch.ones(n)]).double()
    return ([first, second], features), targets, torch.ones_like(targets)


def test_conv_scorer_learns_a_pattern_across_scales_a_monotone_mix_cannot():
    torch.manual_seed(0)
    aurocs = {}
    for name, scorer in [("conv", ConvScorer([3, 3])), ("learned", DeviationScorer([3, 3]))]:
        scorer = scorer.double()
        optimizer = torch.optim.Adam(scorer.parameters(), lr=scorer.learning_rate)
        for step in range(150):
            optimizer.zero_grad()
            stage2_loss(scorer, crossed_scales(64, step)).backward()
            optimizer.step()
        outputs, targets, _ = crossed_scales(200, 1000)
        with torch.no_grad():
            aurocs[name] = roc_auc_score(targets.numpy(), scorer(*outputs).numpy())
    assert aurocs["conv"] > 0.95
    assert aurocs["learned"] < 0.65


def test_stage2_echoes_each_batch(monkeypatch):
    import skmcad.stage2
    calls = []
    original = skmcad.stage2.stage2_loss
    monkeypatch.setattr(skmcad.stage2, "stage2_loss",
                        lambda *a: (calls.append(1), original(*a))[1])
    scorer = ConvScorer(CHANNELS).double()
    scorer.fit_statistics([batch(20, 0)])
    x = torch.rand(16, 1, 4, 4, dtype=torch.float64)
    config = StageConfig(epochs=1, batch_size=8, learning_rate=1e-3)
    train_stage2(FrozenFeatures(FixedNetwork(), x, 8), torch.arange(16), scorer, config,
                 torch.Generator().manual_seed(0))
    assert len(calls) == 2 * scorer.echo_steps  # two batches, echoed
    assert scorer.net[-1].weight.abs().sum() > 0


class FixedNetwork(torch.nn.Module):
    """Deviation maps and features of the tests' batches, whatever the input."""

    distance = "cosine"
    memories = []

    def features(self, x):
        return [x]

    def deviations(self, features, with_features=False):
        x = features[0]
        maps, features = batch(len(x), int(x[0, 0, 0, 0] * 1000) % 97)
        return (maps, features) if with_features else maps

    def deviation_maps(self, x, with_features=False):
        return self.deviations(self.features(x), with_features)


def test_hybrid_heads_learn_from_the_labelled_anomalies():
    x = torch.rand(20, 1, 4, 4, dtype=torch.float64)  # 16 normal rows, 4 labelled anomalies
    frozen, rows, labelled = FrozenFeatures(FixedNetwork(), x, 8), torch.arange(16), \
        torch.arange(16, 20)
    g = torch.Generator().manual_seed(0)
    without = stage2_loss(HybridScorer(CHANNELS).double(), stage2_batch(frozen, rows, g))
    g = torch.Generator().manual_seed(0)
    with_labels = stage2_loss(HybridScorer(CHANNELS).double(),
                              stage2_batch(frozen, rows, g, labelled))
    assert not torch.isclose(without, with_labels)
    trained = {}
    for name, anomalies in [("one-class", None), ("unbalanced", labelled)]:
        scorer = HybridScorer(CHANNELS).double()
        scorer.fit_statistics([batch(20, 0)])
        config = StageConfig(epochs=2, batch_size=8, learning_rate=1e-3)
        train_stage2(frozen, rows, scorer, config, torch.Generator().manual_seed(0),
                     anomalies)
        trained[name] = torch.cat([h.weight.flatten() for h in scorer.heads])
        assert trained[name].abs().sum() > 0  # the heads moved from zero
    assert not torch.allclose(trained["one-class"], trained["unbalanced"])


def test_build_scorer_names():
    class Net:
        channels, distance, scale_prior = CHANNELS, "euclidean", [1.0, 1.0]

    assert type(build_scorer("learned", Net())) is DeviationScorer
    assert build_scorer("learned", Net(), discriminative=True).head is not None
    assert not build_scorer("gaussian", Net()).normalise
    assert type(build_scorer("hybrid", Net())) is HybridScorer
    assert type(build_scorer("conv", Net())) is ConvScorer
    with pytest.raises(ValueError, match="scorer must be one of"):
        build_scorer("vote", Net())


@pytest.mark.parametrize("scorer", ["gaussian", "hybrid", "conv"])
def test_detector_with_each_scorer_scores_and_maps(digits, tiny_params, scorer):
    X, y = digits
    det = MCADDetector(**{**tiny_params, "scorer": scorer}).fit(X[:300][y[:300] == 0])
    scores = det.decision_function(X[300:600])
    assert roc_auc_score(y[300:600] != 0, scores) > 0.9
    maps = det.anomaly_map(X[300:305])
    assert maps.shape == (5, 8, 8) and np.isfinite(maps).all()
    if scorer == "gaussian":
        # bounded; anomalies far from the compact normal class saturate at 1 in float64
        assert det.history_["stage2"] == [] and ((0 <= scores) & (scores <= 1)).all()


def test_hybrid_scorer_in_the_unbalanced_setting(digits, tiny_params):
    X, y = digits
    normal = np.flatnonzero(y[:600] == 0)
    ones = np.flatnonzero(y[:600] == 1)[:6]
    train = np.r_[normal, ones]
    labels = (y[train] == 1).astype(int)
    det = MCADDetector(**{**tiny_params, "scorer": "hybrid", "setting": "unbalanced"}).fit(
        X[train], labels)
    heads = torch.cat([h.weight.flatten() for h in det.scorer_.heads])
    assert heads.abs().sum() > 0
    test = np.r_[np.flatnonzero(y[600:] == 0), np.flatnonzero(y[600:] == 1)] + 600
    assert roc_auc_score(y[test] == 1, det.decision_function(X[test])) > 0.9


def test_conv_scorer_in_the_unbalanced_setting_has_the_descriptor_head(digits, tiny_params):
    X, y = digits
    normal = np.flatnonzero(y[:600] == 0)
    ones = np.flatnonzero(y[:600] == 1)[:6]
    train = np.r_[normal, ones]
    det = MCADDetector(**{**tiny_params, "scorer": "conv", "setting": "unbalanced"}).fit(
        X[train], (y[train] == 1).astype(int))
    assert det.scorer_.head is not None and det.scorer_.head.weight.abs().sum() > 0
    assert det.scorer_.net[-1].weight.abs().sum() > 0  # the CNN moved from zero too
    test = np.r_[np.flatnonzero(y[600:] == 0), np.flatnonzero(y[600:] == 1)] + 600
    assert roc_auc_score(y[test] == 1, det.decision_function(X[test])) > 0.9
    one_class = MCADDetector(**{**tiny_params, "scorer": "conv"}).fit(X[normal])
    assert one_class.scorer_.head is None
