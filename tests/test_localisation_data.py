"""Tests of the image-folder loaders: Magnetic Tile and MVTec AD-style folders."""

import numpy as np
import pytest
from PIL import Image

from skmcad.datasets import (list_image_folder_categories, load_image_folder,
                             load_magnetic_tile)


def _save(path, array):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


def _tile(value, shape=(30, 40)):
    return np.full(shape, value, dtype=np.uint8)


@pytest.fixture
def magnetic_tile(tmp_path):
    """MT_Free with 3 images, MT_Crack with 2, of different sizes, masks beside them."""
    root = tmp_path / "magnetic_tile"
    for i in range(3):
        _save(root / "MT_Free/Imgs" / f"f{i}.jpg", _tile(50 + i))
        _save(root / "MT_Free/Imgs" / f"f{i}.png", _tile(0))
    for i, shape in enumerate([(40, 40), (60, 20)]):
        mask = np.zeros(shape, dtype=np.uint8)
        mask[: shape[0] // 2] = 200  # top half defective
        mask[-1, -1] = 127  # noise below the threshold stays background
        _save(root / "MT_Crack/Imgs" / f"c{i}.jpg", _tile(200, shape))
        _save(root / "MT_Crack/Imgs" / f"c{i}.png", mask)
    return tmp_path


def test_magnetic_tile_arrays(magnetic_tile):
    images, labels, masks, classes = load_magnetic_tile(magnetic_tile, size=16)
    assert images.shape == (5, 16, 16) and images.dtype == np.uint8
    assert masks.shape == (5, 16, 16) and masks.dtype == bool
    assert classes.tolist() == ["Crack", "Crack", "Free", "Free", "Free"]
    assert labels.tolist() == [1, 1, 0, 0, 0]
    # resized masks keep the top half, nearest neighbour: exactly 8 of 16 rows
    assert masks[:2, :8].all() and not masks[:2, 8:].any()
    assert not masks[2:].any()
    # JPEG is lossy: values stay near the drawn grey levels
    assert abs(int(images[2].mean()) - 50) <= 2 and abs(int(images[0].mean()) - 200) <= 2


def test_magnetic_tile_errors(magnetic_tile):
    with pytest.raises(ValueError, match="size"):
        load_magnetic_tile(magnetic_tile, size=0)
    (magnetic_tile / "magnetic_tile/MT_Crack/Imgs/c0.png").unlink()
    with pytest.raises(FileNotFoundError, match="c0.jpg has no mask"):
        load_magnetic_tile(magnetic_tile, size=8)
    with pytest.raises(FileNotFoundError, match="MT_Free"):
        load_magnetic_tile(magnetic_tile / "magnetic_tile/MT_Crack", size=8)


def test_magnetic_tile_unreadable_image(magnetic_tile):
    (magnetic_tile / "magnetic_tile/MT_Free/Imgs/f0.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match="not a readable image"):
        load_magnetic_tile(magnetic_tile, size=8)


@pytest.fixture
def mvtec(tmp_path):
    """Category "bottle" in MVTec AD's layout: RGB, 4 train, test good 2 and broken 2 (one
    without a mask); category "grey" with grey images only."""
    rng = np.random.default_rng(0)
    bottle = tmp_path / "bottle"
    for i in range(4):
        _save(bottle / "train/good" / f"{i:03d}.png", rng.integers(0, 255, (24, 24, 3)))
    for i in range(2):
        _save(bottle / "test/good" / f"{i:03d}.png", rng.integers(0, 255, (24, 24, 3)))
        _save(bottle / "test/broken" / f"{i:03d}.png", rng.integers(0, 255, (24, 24, 3)))
    mask = np.zeros((24, 24), dtype=np.uint8)
    mask[:, :12] = 255  # left half
    _save(bottle / "ground_truth/broken/000_mask.png", mask)
    grey = tmp_path / "grey"
    for part in ("train/good", "test/good", "test/hole"):
        _save(grey / part / "a.png", _tile(100, (10, 10)))
    return tmp_path


def test_image_folder_mvtec_layout(mvtec):
    assert list_image_folder_categories(mvtec) == ["bottle", "grey"]
    X_train, X_test, y_test, masks, defects = load_image_folder(mvtec, size=12,
                                                                category="bottle")
    assert X_train.shape == (4, 12, 12, 3) and X_train.dtype == np.uint8
    assert X_test.shape == (4, 12, 12, 3)
    assert defects.tolist() == ["broken", "broken", "good", "good"]
    assert y_test.tolist() == [1, 1, 0, 0]
    assert masks.shape == (4, 12, 12) and masks.dtype == bool
    assert masks[0, :, :6].all() and not masks[0, :, 6:].any()
    assert not masks[1:].any()  # 001 of broken has no mask file, good ones never have
    # the category folder itself works too
    again = load_image_folder(mvtec / "bottle", size=12)
    np.testing.assert_array_equal(again[1], X_test)


def test_image_folder_grey_stays_grey_and_errors(mvtec):
    X_train, X_test, y_test, masks, defects = load_image_folder(mvtec / "grey", size=5)
    assert X_train.shape == (1, 5, 5) and X_test.shape == (2, 5, 5)
    assert (X_train == 100).all()
    assert defects.tolist() == ["good", "hole"] and y_test.tolist() == [0, 1]
    with pytest.raises(FileNotFoundError, match="train/good"):
        load_image_folder(mvtec, size=5)  # the root is not a category
    with pytest.raises(FileNotFoundError):
        load_image_folder(mvtec, size=5, category="missing")
