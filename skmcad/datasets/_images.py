"""Reading image files and their defect masks at one size."""

import numbers

import numpy as np

MASK_THRESHOLD = 128  # mask pixels at or above it are defect (masks are noisy JPEG-era PNGs)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, numbers.Integral) or size < 1:
        raise ValueError(f"size must be a positive integer (pixels a side); got {size!r}.")
    return int(size)


def _pil():
    try:
        from PIL import Image
    except ImportError as exc:  # pillow is a dependency; say so if it is missing anyway
        raise ImportError("Reading image files needs Pillow: pip install pillow.") from exc
    return Image


def _read_image(path, size, mode):
    """``path`` as uint8 (size, size[, 3]) in PIL ``mode`` "L" or "RGB", resized bilinearly.

    Pillow widens its filter when shrinking, so a 600 px image is averaged, not aliased.
    """
    Image = _pil()
    try:
        with Image.open(path) as image:
            image = image.convert(mode)
            image = image.resize((size, size), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except OSError as exc:  # PIL.UnidentifiedImageError is an OSError
        raise ValueError(f"{path} is not a readable image: {exc}") from exc


def _read_mask(path, size):
    """Boolean (size, size) mask: thresholded at its own size, then resized by nearest."""
    Image = _pil()
    try:
        with Image.open(path) as image:
            defect = np.asarray(image.convert("L")) >= MASK_THRESHOLD
    except OSError as exc:
        raise ValueError(f"{path} is not a readable mask: {exc}") from exc
    resized = Image.fromarray(defect.astype(np.uint8) * 255).resize((size, size), Image.NEAREST)
    return np.asarray(resized) >= MASK_THRESHOLD


def _image_files(folder):
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
