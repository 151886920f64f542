import math

import pytest
import torch

from skmcad.nn.losses import (anomaly_margin, mean_shifted_contrast, memory_consistency,
                              memory_regularizer, nt_xent)


def naive_nt_xent(z1, z2, temperature, negatives=None):
    """NT-Xent written from the SimCLR paper, one anchor at a time; extra negatives only
    ever appear in the denominators."""
    z = torch.cat([z1, z2])
    pool = z if negatives is None else torch.cat([z, negatives])
    n = len(z1)

    def sim(a, b):
        return float(torch.dot(z[a], pool[b]) / (z[a].norm() * pool[b].norm())) / temperature

    total = 0.0
    for i in range(2 * n):
        positive = (i + n) % (2 * n)
        denominator = sum(math.exp(sim(i, k)) for k in range(len(pool)) if k != i)
        total += -math.log(math.exp(sim(i, positive)) / denominator)
    return total / (2 * n)


@pytest.mark.parametrize("n, dim, temperature", [(2, 3, 0.5), (5, 8, 0.2), (16, 4, 1.0)])
def test_nt_xent_matches_naive_loop(n, dim, temperature):
    generator = torch.Generator().manual_seed(n)
    z1 = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    z2 = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    expected = naive_nt_xent(z1, z2, temperature)
    assert float(nt_xent(z1, z2, temperature)) == pytest.approx(expected, rel=1e-9)


def test_nt_xent_with_extra_negatives_matches_naive_loop():
    generator = torch.Generator().manual_seed(7)
    z1, z2, negatives = (torch.randn(m, 5, generator=generator, dtype=torch.float64)
                         for m in (4, 4, 3))
    expected = naive_nt_xent(z1, z2, 0.3, negatives)
    assert float(nt_xent(z1, z2, 0.3, negatives)) == pytest.approx(expected, rel=1e-9)
    assert float(nt_xent(z1, z2, 0.3, negatives)) > float(nt_xent(z1, z2, 0.3))


def test_anomaly_margin_is_zero_once_anomalies_deviate_twice_as_much():
    normal = torch.tensor([1.0, 1.0])
    assert float(anomaly_margin(normal, torch.tensor([2.5, 3.0]))) == 0.0
    assert float(anomaly_margin(normal, torch.tensor([0.0, 2.0]))) == pytest.approx(0.5)


def test_nt_xent_is_symmetric_and_lower_for_aligned_views():
    generator = torch.Generator().manual_seed(0)
    z1 = torch.randn(8, 16, generator=generator)
    z2 = torch.randn(8, 16, generator=generator)
    assert float(nt_xent(z1, z2, 0.2)) == pytest.approx(float(nt_xent(z2, z1, 0.2)), rel=1e-6)
    assert float(nt_xent(z1, z1 + 0.01 * z2, 0.2)) < float(nt_xent(z1, z2, 0.2))


def test_memory_consistency_is_zero_for_identical_and_two_for_opposite_features():
    f = torch.randn(2, 4, 3, 3)
    assert float(memory_consistency(f, f)) == pytest.approx(0.0, abs=1e-6)
    assert float(memory_consistency(f, -f)) == pytest.approx(2.0, abs=1e-6)


def test_memory_regularizer_penalises_collapse_and_unused_prototypes():
    k = 4
    spread = torch.eye(k)  # orthogonal prototypes
    collapsed = torch.ones(k, k)  # identical prototypes
    uniform = torch.full((10, k), 1.0 / k)
    one_used = torch.zeros(10, k)
    one_used[:, 0] = 1.0
    assert float(memory_regularizer(spread, uniform)) == pytest.approx(0.0, abs=1e-6)
    assert float(memory_regularizer(collapsed, uniform)) == pytest.approx(1.0, abs=1e-6)
    assert float(memory_regularizer(spread, one_used)) == pytest.approx(math.log(k), abs=1e-4)


def naive_mean_shifted_contrast(z1, z2, centre, temperature, negatives=None):
    """The mean-shifted contrastive loss from its paper, one sample at a time: each unit
    embedding minus the centre, re-normalised, into NT-Xent; plus 1 - cos(z, centre) per
    view, averaged over the samples. Extra negatives are shifted the same way and never
    enter the angular term."""
    def shifted(view):
        return torch.stack([(v / v.norm() - centre) / (v / v.norm() - centre).norm()
                            for v in view])

    unit = [[v / v.norm() for v in z] for z in (z1, z2)]
    angular = sum(1 - float(torch.dot(v, centre)) for view in unit for v in view) / len(z1)
    extra = None if negatives is None else shifted(negatives)
    return naive_nt_xent(shifted(z1), shifted(z2), temperature, extra) + angular


@pytest.mark.parametrize("n, dim, temperature, n_negatives",
                         [(2, 3, 0.25, 0), (6, 5, 0.5, 0), (4, 5, 0.25, 3)])
def test_mean_shifted_contrast_matches_naive_loop(n, dim, temperature, n_negatives):
    generator = torch.Generator().manual_seed(n)
    z1, z2, centre, negatives = (torch.randn(*shape, generator=generator, dtype=torch.float64)
                                 for shape in [(n, dim), (n, dim), (dim,), (n_negatives, dim)])
    centre = centre / centre.norm()
    negatives = negatives if n_negatives else None
    expected = naive_mean_shifted_contrast(z1, z2, centre, temperature, negatives)
    got = float(mean_shifted_contrast(z1, z2, centre, temperature, negatives))
    assert got == pytest.approx(expected, rel=1e-9)


def test_mean_shifted_contrast_rises_with_negatives_like_the_views():
    generator = torch.Generator().manual_seed(0)
    z1, z2 = torch.randn(2, 8, 8, generator=generator, dtype=torch.float64)
    centre = torch.nn.functional.normalize(z1.mean(0), dim=0)
    look_alikes = z1 + 0.01 * torch.randn(8, 8, generator=generator, dtype=torch.float64)
    base = float(mean_shifted_contrast(z1, z2, centre, 0.25))
    assert float(mean_shifted_contrast(z1, z2, centre, 0.25, look_alikes)) > base + 0.1


def test_mean_shifted_contrast_is_lower_for_a_class_close_to_its_centre():
    generator = torch.Generator().manual_seed(0)
    centre = torch.zeros(8, dtype=torch.float64)
    centre[0] = 1.0
    spread = torch.randn(16, 8, generator=generator, dtype=torch.float64)
    close = centre + 0.1 * spread  # each view one sample's own small deviation
    far = centre + 3.0 * spread
    assert mean_shifted_contrast(close, close, centre, 0.25) < mean_shifted_contrast(
        far, far, centre, 0.25)
