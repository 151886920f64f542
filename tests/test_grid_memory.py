"""The grid memory: its read is bilinear interpolation of the grid's prototypes."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from skmcad import MCADDetector
from skmcad.nn.grid_memory import GridMemory


def naive_bilinear(grid, x, y):
    """Bilinear interpolation of ``grid`` (side, side, C) at ``(x, y)`` in [-1, 1]^2, with
    x along columns and y along rows, corners at the grid's outer prototypes: written from
    the definition, one query at a time."""
    side = grid.shape[0]
    px, py = (x + 1) * (side - 1) / 2, (y + 1) * (side - 1) / 2
    x0, y0 = min(int(math.floor(px)), side - 2), min(int(math.floor(py)), side - 2)
    dx, dy = px - x0, py - y0
    return ((1 - dx) * (1 - dy) * grid[y0, x0] + dx * (1 - dy) * grid[y0, x0 + 1]
            + (1 - dx) * dy * grid[y0 + 1, x0] + dx * dy * grid[y0 + 1, x0 + 1])


@pytest.fixture
def memory():
    torch.manual_seed(0)
    memory = GridMemory(n_prototypes=20, dim=6).double()  # round(sqrt(20)) = 4: a 4 x 4 grid
    with torch.no_grad():
        memory.prototypes.normal_()
    return memory


def test_grid_side_from_the_prototype_count():
    assert GridMemory(256, 3).side == 16
    assert GridMemory(20, 3).side == 4
    assert GridMemory(1, 3).side == 2


def test_read_is_bilinear_interpolation_at_the_located_coordinates(memory):
    features = torch.randn(2, 6, 3, 5, dtype=torch.float64)
    retrieved, attention = memory(features)
    assert retrieved.shape == features.shape and attention.shape == (30, 16)
    queries = features.permute(0, 2, 3, 1).reshape(-1, 6)
    coordinates = memory.coordinates(queries).detach().numpy()
    grid = memory.prototypes.detach().numpy().reshape(4, 4, 6)
    expected = np.stack([naive_bilinear(grid, x, y) for x, y in coordinates])
    got = retrieved.permute(0, 2, 3, 1).reshape(-1, 6).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_read_matches_torch_grid_sample(memory):
    coordinates = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    weights = memory.interpolation_weights(coordinates)
    grid = memory.prototypes.detach().reshape(4, 4, 6).permute(2, 0, 1)[None]  # (1, C, y, x)
    sampled = F.grid_sample(grid, coordinates[None, :, None], mode="bilinear",
                            align_corners=True)[0, :, :, 0].T  # (50, C)
    torch.testing.assert_close(weights @ memory.prototypes.detach(), sampled)


def test_attention_has_four_weights_summing_to_one(memory):
    weights = memory.interpolation_weights(torch.rand(100, 2, dtype=torch.float64) * 2 - 1)
    torch.testing.assert_close(weights.sum(1), torch.ones(100, dtype=torch.float64))
    assert ((weights > 0).sum(1) <= 4).all()
    # at a prototype's own coordinates the read is that prototype
    corner = memory.interpolation_weights(torch.tensor([[-1.0, 1.0]], dtype=torch.float64))
    assert corner[0].argmax() == 12 and corner[0].max() == 1  # row 3 (y = 1), column 0


def test_initialisation_lays_the_grid_on_the_principal_plane():
    torch.manual_seed(0)
    # features on a 2-D plane of a 6-D space, plus points off it
    basis = torch.linalg.qr(torch.randn(6, 2, dtype=torch.float64))[0].T  # (2, 6)
    plane = torch.randn(400, 2, dtype=torch.float64) * torch.tensor([3.0, 1.0]) @ basis + 5.0
    memory = GridMemory(256, 6).double()
    memory.initialize_from(plane[:, :, None, None])
    on_plane, _ = memory(plane[:, :, None, None])
    off = plane + 2.0 * torch.linalg.qr(torch.randn(6, 6, dtype=torch.float64))[0][:, 5]
    off_plane, _ = memory(off[:, :, None, None])
    error_on = (on_plane[:, :, 0, 0] - plane).norm(dim=1).median()
    error_off = (off_plane[:, :, 0, 0] - off).norm(dim=1).median()
    assert error_on < 0.1 < 1.5 < error_off


def test_detector_with_a_grid_memory(digits, tiny_params):
    X, y = digits
    normal = X[:200][y[:200] == 0]
    untrained = MCADDetector(**{**tiny_params, "memory": "grid", "stage1_epochs": 0}).fit(normal)
    det = MCADDetector(**{**tiny_params, "memory": "grid"}).fit(normal)
    learned = [m for m, kind in zip(det.network_.memories, det.network_.scale_kinds)
               if kind == "learned"]
    assert len(learned) == 2 and all(isinstance(m, GridMemory) for m in learned)
    # same data and seed, so the same principal-plane start: stage 1 moves the locator
    assert not torch.allclose(untrained.network_.memories[0].locator.weight,
                              det.network_.memories[0].locator.weight)
    scores = det.decision_function(X[200:400])
    assert np.isfinite(scores).all() and scores.shape == (200,)


def test_unknown_memory_is_a_clear_error(digits, tiny_params):
    X, _ = digits
    with pytest.raises(ValueError, match="memory"):
        MCADDetector(**{**tiny_params, "memory": "ring"}).fit(X[:40])
