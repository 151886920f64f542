"""The tabular path: the input scales (a kNN bank and a memory over the standardised rows)
beside the learned MLP scales, and their starting weights in the stage-2 scorer."""

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.nn.hopfield_memory import HopfieldMemory
from skmcad.nn.neighbour_memory import NearestNeighbourMemory
from skmcad.nn.network import INPUT_NEIGHBOUR_FRACTION, INPUT_NEIGHBOURS
from skmcad.scorers import DeviationScorer

SMALL = dict(stage1_epochs=2, stage2_epochs=0, random_state=0)


@pytest.fixture(scope="module")
def rows():
    """Correlated normal rows, and outliers: wide draws that ignore the correlation."""
    rng = np.random.default_rng(0)
    mixing = rng.normal(size=(4, 4))
    X = rng.normal(size=(160, 4)) @ mixing
    outliers = rng.normal(size=(10, 4)) * 4
    return X[:120], outliers, X[120:]


@pytest.fixture(scope="module")
def fitted(rows):
    return MCADDetector(**SMALL).fit(rows[0])


def test_default_tabular_network_reads_the_rows_twice_then_three_learned_scales(fitted):
    network = fitted.network_
    assert fitted.config_["n_scales"] == 5
    assert network.scale_kinds == ["neighbours", "prototypes", "learned", "learned", "learned"]
    memories = network.memories
    assert isinstance(memories[0], NearestNeighbourMemory)
    assert memories[0].n_neighbours == INPUT_NEIGHBOURS == 5
    assert all(isinstance(m, HopfieldMemory) for m in memories[1:])
    assert memories[1].prototypes.shape == (32, 4)  # prototypes of standardised rows


def test_input_scale_deviation_is_the_knn_distance_over_the_training_rows(fitted, rows):
    X, outliers, _ = rows
    standardised = fitted.standardizer_.transform(X)
    bank = fitted.network_.memories[0].bank.numpy()
    # the bank holds the stage-1 training rows: 90 % of the data (the rest is held out)
    assert bank.shape == (108, 4)
    assert all(np.isclose(standardised, row).all(axis=1).any() for row in bank)
    queries = fitted.standardizer_.transform(np.vstack([X[:5], outliers]))
    with torch.no_grad():
        maps = fitted.network_.deviation_maps(torch.from_numpy(queries))
    distances = np.sort(((queries[:, None] - bank[None]) ** 2).sum(axis=2), axis=1)
    expected = distances[:, INPUT_NEIGHBOURS - 1] / 4  # 5th nearest, squared, per feature
    np.testing.assert_allclose(maps[0][:, 0, 0].numpy(), expected, rtol=1e-10)


def test_bank_size_caps_the_knn_scale_with_rows_drawn_from_the_training_rows(rows):
    X = rows[0]
    capped = MCADDetector(bank_size=40, **SMALL).fit(X)
    bank = capped.network_.memories[0].bank.numpy()
    assert bank.shape == (40, 4)  # of the 108 stage-1 training rows
    standardised = capped.standardizer_.transform(X)
    assert all(np.isclose(standardised, row).all(axis=1).any() for row in bank)
    assert np.isfinite(capped.decision_function(rows[2])).all()


def test_knn_scale_reads_a_neighbour_that_grows_with_the_bank():
    """k is 3 % of the bank's rows, at least 5; the no-memory ablation's banks keep k = 1."""
    rng = np.random.default_rng(0)
    memory = NearestNeighbourMemory(dim=3, metric="euclidean", n_neighbours=INPUT_NEIGHBOURS,
                                    neighbour_fraction=INPUT_NEIGHBOUR_FRACTION).double()
    bank = torch.from_numpy(rng.normal(size=(1000, 3)))
    memory.initialize_from(bank[:, :, None, None])
    assert memory.neighbours_read == 30
    queries = torch.from_numpy(rng.normal(size=(7, 3)))
    expected = torch.cdist(queries, bank).argsort(dim=1)[:, 29]
    assert torch.equal(memory.nearest(queries), expected)
    memory.initialize_from(bank[:100, :, None, None])
    assert memory.neighbours_read == INPUT_NEIGHBOURS  # 3 of 100 rows: the least, 5
    assert NearestNeighbourMemory(dim=3).neighbours_read == 1


def test_input_memory_learns_in_stage1_and_the_kNN_bank_does_not_train(rows):
    X = rows[0]
    untrained = MCADDetector(**{**SMALL, "stage1_epochs": 0}).fit(X)
    trained = MCADDetector(**SMALL).fit(X)
    before = untrained.network_.memories[1].prototypes
    after = trained.network_.memories[1].prototypes
    assert not torch.allclose(before, after)
    assert not any(p.requires_grad for p in trained.network_.memories[0].parameters())


def test_scorer_starts_the_knn_scale_at_4_times_the_weight_of_all_others(fitted):
    torch.testing.assert_close(fitted.scorer_.scale_weights,
                               torch.tensor([16.0, 1, 1, 1, 1], dtype=torch.float64))
    # images (every scale learned) keep equal starting weights, exactly
    assert torch.equal(DeviationScorer([4, 4], scale_prior=[1.0, 1.0]).scale_logits,
                       torch.zeros(2))


def test_default_tabular_detector_finds_outliers(rows):
    X, outliers, normal_test = rows
    det = MCADDetector(random_state=0).fit(X)
    assert det.config_["stage1_epochs"] == 5 and det.config_["stage2_epochs"] == 1
    y = np.r_[np.zeros(len(normal_test)), np.ones(len(outliers))]
    scores = det.decision_function(np.vstack([normal_test, outliers]))
    assert roc_auc_score(y, scores) > 0.85


def test_fewer_scales_drop_the_input_scales_first(rows):
    det = MCADDetector(**{**SMALL, "n_scales": 3}).fit(rows[0])
    assert det.network_.scale_kinds == ["learned"] * 3
    assert all(isinstance(m, HopfieldMemory) for m in det.network_.memories)


def test_pretrained_parts_switched_off_are_accepted_by_every_backbone():
    # adapt_steps=0 and image_scale=False mean "none", true of every backbone; other values
    # are for the pretrained one
    X = np.random.default_rng(0).normal(size=(40, 5))
    det = MCADDetector(adapt_steps=0, image_scale=False, n_scales=2, width=4, memory_size=4,
                       stage1_epochs=1, stage2_epochs=1, random_state=0).fit(X)
    assert det.config_["backbone"] == "mlp" and not det.history_.get("backbone")
    with pytest.raises(ValueError, match="takes adapt_steps='auto' or 0"):
        MCADDetector(adapt_steps=1).fit(X)
    with pytest.raises(ValueError, match="takes image_scale='auto' or False"):
        MCADDetector(image_scale=True).fit(X)
