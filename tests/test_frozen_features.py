"""The frozen network's outputs of the training rows, computed once per fit."""

import numpy as np
import pytest
import torch
from torch import nn

import skmcad.frozen_features
from skmcad import MCADDetector
from skmcad.augmentations import synthetic_anomalies
from skmcad.frozen_features import FrozenFeatures, frozen_outputs
from skmcad.nn.neighbour_memory import NearestNeighbourMemory, forget_owners
from skmcad.nn.network import deviation
from skmcad.stage1 import finalize_memories
from skmcad.stage2 import stage2_batch


class BankNetwork(nn.Module):
    """Rows as 1x1 feature maps, read by one kNN bank (the nearest stored row)."""

    distance = "euclidean"

    def __init__(self, dim):
        super().__init__()
        self.memories = nn.ModuleList([NearestNeighbourMemory(dim, "euclidean")])
        self.calls = 0

    def features(self, x):
        self.calls += 1
        return [x[:, :, None, None]]  # (B, C, 1, 1)

    def deviations(self, features, with_features=False):
        maps = [deviation(f, self.memories[0](f)[0], self.distance)
                for f in features]
        return (maps, features) if with_features else maps

    def deviation_maps(self, x, with_features=False):
        return self.deviations(self.features(x), with_features)


def filled(n=12, dim=3, max_bytes=None):
    X = torch.randn(n, dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    network = BankNetwork(dim).double()
    frozen = FrozenFeatures(network, X, 5, max_bytes)
    finalize_memories(frozen, torch.arange(n), torch.Generator().manual_seed(1))
    return network, frozen


def nearest_other(X):
    """Squared distance of each row to its nearest other row: the leave-one-out read."""
    distances = torch.cdist(X, X).pow(2).fill_diagonal_(float("inf"))
    return distances.min(1).values / X.shape[1]


def test_the_features_are_computed_once_when_they_fit():
    network, frozen = filled()
    assert network.calls == 3  # 12 rows in batches of 5
    for rows in (torch.arange(12), torch.tensor([3, 0, 7])):
        frozen.outputs(rows)
        frozen.features(rows)
    assert network.calls == 3


def test_too_large_features_are_recomputed_alike():
    _, kept = filled()
    network, recomputed = filled(max_bytes=0)
    assert kept.stored is not None and recomputed.stored is None
    assert torch.equal(network.memories[0].bank, kept.network.memories[0].bank)
    rows = torch.tensor([4, 11, 2])
    before = network.calls
    maps, features = recomputed.outputs(rows)
    maps0, features0 = kept.outputs(rows)
    assert all(torch.equal(a, b) for a, b in zip(maps + features, maps0 + features0))
    assert network.calls == before + 1


def test_unseen_rows_are_read_without_their_own_vectors():
    network, frozen = filled()
    rows = torch.arange(12)
    (own,), _ = frozen_outputs(network, frozen.X)  # each row finds itself in the bank
    assert torch.all(own == 0)
    assert torch.equal(frozen.outputs(rows)[0][0], own)
    (unseen,), _ = frozen.outputs(rows, unseen=True)
    np.testing.assert_allclose(unseen[:, 0, 0], nearest_other(frozen.X))
    batched = [maps for (maps,), _ in frozen.batches(rows, unseen=True)]
    assert [len(m) for m in batched] == [5, 5, 2]
    assert torch.equal(torch.cat(batched), unseen)
    forget_owners(network)  # after the fit, every read is a plain one
    assert torch.equal(frozen.outputs(rows, unseen=True)[0][0], own)


def test_stage2_reads_the_rows_and_their_synthetic_anomalies():
    network, frozen = filled()
    rows = torch.tensor([1, 5, 8, 9])
    ((maps,), (features,)), targets, _ = stage2_batch(frozen, rows,
                                                      torch.Generator().manual_seed(0))
    synthetic = synthetic_anomalies(frozen.X[rows], torch.Generator().manual_seed(0))
    (expected,), _ = frozen_outputs(network, torch.cat([frozen.X[rows], synthetic]))
    assert torch.equal(maps, expected) and features.shape == (8, 3, 1, 1)
    assert torch.equal(targets, torch.tensor([0.0] * 4 + [1.0] * 4, dtype=torch.float64))


@pytest.mark.parametrize("setting", ["one-class", "unbalanced"])
def test_a_fit_is_the_same_with_or_without_kept_features(monkeypatch, setting):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 4))
    y = (np.arange(90) < 6).astype(int)
    X[y == 1] += 4
    params = dict(random_state=0, stage1_epochs=1, stage2_epochs=2, batch_size=32,
                  setting=setting)
    kept = MCADDetector(**params).fit(X, y)
    monkeypatch.setattr(skmcad.frozen_features, "MAX_BYTES", 0)
    recomputed = MCADDetector(**params).fit(X, y)
    np.testing.assert_allclose(recomputed.decision_scores_, kept.decision_scores_,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(recomputed.decision_function(X), kept.decision_function(X),
                               rtol=1e-5, atol=1e-6)
