"""Images laid out as MVTec AD's: normal training images, test images with masks."""

from pathlib import Path

import numpy as np

from ._files import _require_dir
from ._images import _check_size, _image_files, _pil, _read_image, _read_mask

GOOD = "good"  # MVTec AD's name of the defect-free test folder


def list_image_folder_categories(path):
    """List the categories of an MVTec AD-style folder: subfolders holding ``train/good``.

    Parameters
    ----------
    path : str or os.PathLike

    Returns
    -------
    names : list of str
        Sorted; ``[]`` when ``path`` is itself one category's folder.

    Examples
    --------
    >>> list_image_folder_categories("mvtec_ad")  # doctest: +SKIP
    ['bottle', 'cable', 'capsule', ...]
    """
    folder = _require_dir(Path(path).expanduser(), "Image")
    return sorted(p.name for p in folder.iterdir() if (p / "train" / GOOD).is_dir())


def _mask_path(category_dir, defect, image):
    """MVTec AD's ``<name>_mask.png``, or ``<name>.png`` as VisA-style folders name them."""
    folder = category_dir / "ground_truth" / defect
    for name in (f"{image.stem}_mask.png", f"{image.stem}.png"):
        if (folder / name).is_file():
            return folder / name
    return None


def _image_mode(paths):
    """"L" when every image is grey (single band), else "RGB"."""
    Image = _pil()
    for path in paths:
        try:
            with Image.open(path) as image:
                if image.mode not in ("L", "I", "I;16", "1"):
                    return "RGB"
        except OSError as exc:
            raise ValueError(f"{path} is not a readable image: {exc}") from exc
    return "L"


def load_image_folder(path, size=128, category=None):
    """Load images laid out as MVTec AD's: normal training images, test images with masks.

    The category folder holds ``train/good/`` (defect-free training images),
    ``test/<defect>/`` (test images, ``test/good/`` the defect-free ones) and
    ``ground_truth/<defect>/<name>_mask.png`` (the mask of ``test/<defect>/<name>.*``;
    ``<name>.png`` is accepted too). This reads MVTec AD, VisA converted to that layout,
    or one's own images. Images are resized bilinearly to ``size`` x ``size``; masks are
    thresholded at 128 and resized by nearest neighbour. Defect images without a mask
    get an all-False mask.

    Parameters
    ----------
    path : str or os.PathLike
        The category folder, or, with ``category``, the folder holding it.
    size : int, default=128
        Side, in pixels, of the returned images and masks.
    category : str, default=None
        Subfolder of ``path`` to read, e.g. ``"bottle"``.

    Returns
    -------
    X_train : ndarray of shape (n_train, size, size) or (n_train, size, size, 3), uint8
        Grey when every image file of the category is grey, else RGB.
    X_test : ndarray of shape (n_test, size, size) or (n_test, size, size, 3), uint8
    y_test : ndarray of shape (n_test,), dtype int64
        1 for the images of a defect folder, 0 for ``test/good``.
    masks_test : ndarray of shape (n_test, size, size), dtype bool
        True on defect pixels; all False for good images.
    defects_test : ndarray of shape (n_test,), dtype str
        Test folder of each image (``"good"`` for defect-free ones).

    Raises
    ------
    FileNotFoundError
        No ``train/good`` or ``test`` folder, or one without images.
    ValueError
        ``size`` not a positive integer, or a file that is not a readable image.

    Examples
    --------
    >>> X_train, X_test, y_test, masks, defects = load_image_folder(
    ...     "mvtec_ad", size=128, category="bottle")  # doctest: +SKIP
    """
    size = _check_size(size)
    root = Path(path).expanduser()
    folder = _require_dir(root / category if category is not None else root, "Image category")
    train = _image_files(_require_dir(folder / "train" / GOOD, "Training (train/good)"))
    test_dir = _require_dir(folder / "test", "Test")
    test = [(d.name, image) for d in sorted(p for p in test_dir.iterdir() if p.is_dir())
            for image in _image_files(d)]
    if not train or not test:
        raise FileNotFoundError(f"{folder} needs images in train/good/ and in test/<defect>/.")
    mode = _image_mode(train + [image for _, image in test])
    masks = [_image_mask(folder, defect, image, size) for defect, image in test]
    defects = np.array([defect for defect, _ in test])
    return (np.stack([_read_image(p, size, mode) for p in train]),
            np.stack([_read_image(p, size, mode) for _, p in test]),
            (defects != GOOD).astype(np.int64), np.stack(masks), defects)


def _image_mask(folder, defect, image, size):
    mask = None if defect == GOOD else _mask_path(folder, defect, image)
    return np.zeros((size, size), dtype=bool) if mask is None else _read_mask(mask, size)
