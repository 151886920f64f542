import torch

from skmcad.augmentations import augment_images, augment_rows, synthetic_anomalies


def generator(seed=0):
    return torch.Generator().manual_seed(seed)


def test_image_augmentation_keeps_shape_and_changes_pixels():
    x = torch.randn(8, 3, 16, 16)
    out = augment_images(x, generator())
    assert out.shape == x.shape
    assert not torch.allclose(out, x)


def test_augmentations_are_reproducible_from_the_generator():
    x = torch.randn(4, 1, 8, 8)
    assert torch.equal(augment_images(x, generator(1)), augment_images(x, generator(1)))
    assert not torch.equal(augment_images(x, generator(1)), augment_images(x, generator(2)))
    rows = torch.randn(10, 5)
    assert torch.equal(augment_rows(rows, generator(3)), augment_rows(rows, generator(3)))


def test_row_augmentation_only_draws_replacements_from_the_same_feature():
    rows = torch.arange(40, dtype=torch.float32).reshape(10, 4) * 10
    out = augment_rows(rows, generator(), noise=0.0, corruption=0.5)
    for j in range(4):
        assert set(out[:, j].tolist()) <= set(rows[:, j].tolist())


def test_synthetic_anomalies_alter_part_of_each_image_and_keep_the_rest():
    x = torch.randn(6, 3, 16, 16)
    negatives = synthetic_anomalies(x, generator())
    changed = (negatives != x).any(dim=1).flatten(1).float().mean(dim=1)  # fraction per image
    assert negatives.shape == x.shape
    assert (changed > 0).all() and (changed < 0.5).all()


def test_synthetic_row_anomalies_change_some_features():
    rows = torch.randn(20, 10)
    negatives = synthetic_anomalies(rows, generator())
    assert negatives.shape == rows.shape
    assert (negatives != rows).any(dim=1).float().mean() > 0.8


def _tabular(kind, rows, seed=0):
    from skmcad.augmentations import TABULAR_ANOMALY_TYPES, tabular_anomalies

    kinds = torch.full((len(rows),), TABULAR_ANOMALY_TYPES.index(kind), dtype=torch.long)
    return tabular_anomalies(rows, generator(seed), kinds)


def test_global_row_anomalies_are_uniform_over_the_widened_range():
    rows = torch.randn(64, 3, dtype=torch.float64)
    out = _tabular("global", rows)
    low, high = rows.amin(dim=0), rows.amax(dim=0)
    margin = 0.1 * (high - low)
    assert ((out >= low - margin) & (out <= high + margin)).all()
    # not the rows themselves, and spread over the range, not near the mean only
    assert not torch.isclose(out, rows).any()
    assert ((out < low) | (out > high)).any()


def test_dependency_row_anomalies_take_each_value_from_its_own_feature():
    rows = torch.arange(60, dtype=torch.float64).reshape(20, 3) * 10 + torch.tensor([0, 1, 2])
    out = _tabular("dependency", rows)
    for j in range(3):
        assert set(out[:, j].tolist()) <= set(rows[:, j].tolist())
    changed = (out != rows).float().mean()
    assert changed > 0.3  # a random 50-100 % of the features, drawn from other rows


def test_clustered_row_anomalies_move_groups_of_eight_together_away_from_the_mean():
    rows = torch.randn(32, 4, dtype=torch.float64)
    shift = _tabular("clustered", rows) - rows
    for start in range(0, 32, 8):
        group = shift[start:start + 8]
        torch.testing.assert_close(group, group[:1].expand_as(group))  # one shift per group
    # the shift is (a - 1) * (x_c - mean) with a in [2, 5] and x_c a row of the batch
    centred = rows - rows.mean(dim=0)
    for s in shift[::8]:
        ratio = s / centred  # (32, 4): constant along the row of the centre drawn
        row = (ratio - ratio[:, :1]).abs().amax(dim=1).argmin()
        assert 1.0 - 1e-9 <= ratio[row, 0] <= 4.0 + 1e-9
        torch.testing.assert_close(ratio[row], ratio[row, :1].expand(4))


def test_local_row_anomalies_widen_the_spread_around_each_row():
    rows = torch.randn(8, 3, dtype=torch.float64)
    step = _tabular("local", rows) - rows  # sqrt(a - 1) / sqrt(2) * (x_j - x_k), a in [2, 5]
    differences = (rows[:, None] - rows[None]).reshape(-1, 3)  # every x_j - x_k
    for s in step:
        if s.abs().max() == 0:  # j == k
            continue
        ratio = s / differences
        found = ((ratio - ratio[:, :1]).abs().amax(dim=1) < 1e-9) & (
            ratio[:, 0] >= 0.5 ** 0.5 - 1e-9) & (ratio[:, 0] <= 2.0 ** 0.5 + 1e-9)
        assert found.any()


def test_synthetic_row_anomalies_mix_the_four_types_in_turn():
    from skmcad.augmentations import tabular_anomalies

    rows = torch.randn(16, 5, dtype=torch.float64)
    mixed = synthetic_anomalies(rows, generator(4))
    torch.testing.assert_close(mixed, tabular_anomalies(rows, generator(4)))
    for index, kind in enumerate(("local", "global", "dependency", "clustered")):
        alone = _tabular(kind, rows, seed=4)
        torch.testing.assert_close(mixed[index::4], alone[index::4])
