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
