"""The Magnetic Tile Defect set: industrial grey images with pixel masks."""

import numpy as np

from ._files import _require_dir, resolve_data_dir
from ._images import _check_size, _image_files, _read_image, _read_mask

MAGNETIC_TILE_FREE = "Free"  # MT_Free: the defect-free class


def _magnetic_tile_pairs(root):
    """``(class, image path, mask path)`` of every image, classes and names in sorted order."""
    folders = sorted(p for p in root.glob("MT_*") if p.is_dir())
    if not any(p.name == f"MT_{MAGNETIC_TILE_FREE}" for p in folders):
        raise FileNotFoundError(
            f"Magnetic Tile not found: expected {root / ('MT_' + MAGNETIC_TILE_FREE) / 'Imgs'} "
            "and the defect folders MT_<class>/Imgs beside it.")
    pairs = []
    for folder in folders:
        images = [p for p in _image_files(folder / "Imgs") if p.suffix.lower() == ".jpg"]
        for image in images:
            mask = image.with_suffix(".png")
            if not mask.is_file():
                raise FileNotFoundError(f"Magnetic Tile image {image} has no mask {mask.name}.")
            pairs.append((folder.name[len("MT_"):], image, mask))
    return pairs


def load_magnetic_tile(data_dir=None, size=128):
    """Load the Magnetic Tile Defect data set with its pixel masks, at one size.

    The folder holds the authors' release: ``MT_<class>/Imgs/<name>.jpg`` with its mask
    ``<name>.png`` beside it, for the defect-free class ``MT_Free`` and the defect classes
    (``Blowhole``, ``Break``, ``Crack``, ``Fray``, ``Uneven``). Images are read as grey and
    resized bilinearly to ``size`` x ``size`` (their aspect ratios, which vary, are not
    kept); masks are thresholded at 128 and resized by nearest neighbour.

    Source: Huang, Qiu, Yuan, "Surface defect saliency of magnetic tile", The Visual
    Computer 36, 2020.

    Parameters
    ----------
    data_dir : str or os.PathLike, default=None
        Folder holding the ``MT_*`` folders; see :func:`resolve_data_dir` (subfolder
        ``magnetic_tile``).
    size : int, default=128
        Side, in pixels, of the returned images and masks.

    Returns
    -------
    images : ndarray of shape (n, size, size), dtype uint8
        Grey images, classes in alphabetical order, names sorted within a class.
    labels : ndarray of shape (n,), dtype int64
        1 for the images of a defect class, 0 for those of ``MT_Free``.
    masks : ndarray of shape (n, size, size), dtype bool
        True on defect pixels.
    classes : ndarray of shape (n,), dtype str
        Class of each image without the ``MT_`` prefix (``"Free"`` for defect-free ones).

    Raises
    ------
    FileNotFoundError
        No ``MT_Free`` folder, or an image without its mask.
    ValueError
        ``size`` not a positive integer, or a file that is not a readable image.

    Examples
    --------
    >>> images, labels, masks, classes = load_magnetic_tile("~/skmcad_data")  # doctest: +SKIP
    >>> images.shape, int(labels.sum())  # doctest: +SKIP
    ((1344, 128, 128), 392)
    """
    size = _check_size(size)
    root = _require_dir(resolve_data_dir(data_dir, "magnetic_tile"), "Magnetic Tile")
    pairs = _magnetic_tile_pairs(root)
    images = np.stack([_read_image(image, size, "L") for _, image, _ in pairs])
    masks = np.stack([_read_mask(mask, size) for _, _, mask in pairs])
    classes = np.array([name for name, _, _ in pairs])
    labels = (classes != MAGNETIC_TILE_FREE).astype(np.int64)
    return images, labels, masks, classes
