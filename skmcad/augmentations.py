"""Batched random augmentations and synthetic anomalies, on torch tensors on the model's device.

Every function draws its randomness from an explicit ``torch.Generator`` on the same device
as the data, so a fit is reproducible and never touches the global random state.
"""

import torch
import torch.nn.functional as F


def augment_images(x, generator, crop_scale=(0.35, 1.0), flip=True, jitter=0.4, grey_prob=0.2):
    """Random resized crop, horizontal flip, colour jitter and greyscale of a batch.

    Parameters
    ----------
    x : Tensor of shape (B, C, H, W)
        Standardised images.
    generator : torch.Generator
        On ``x.device``.

    Returns
    -------
    Tensor of shape (B, C, H, W)
    """
    x = _random_resized_crop(x, generator, crop_scale, flip)
    x = _colour_jitter(x, generator, jitter)
    if x.shape[1] == 3 and grey_prob > 0:
        grey = x.mean(dim=1, keepdim=True).expand_as(x)
        pick = _uniform(generator, x, (len(x), 1, 1, 1)) < grey_prob
        x = torch.where(pick, grey, x)
    return x


def _uniform(generator, like, shape, low=0.0, high=1.0):
    u = torch.rand(shape, generator=generator, device=like.device, dtype=like.dtype)
    return low + (high - low) * u


def _random_resized_crop(x, generator, crop_scale, flip):
    # One affine grid per image does crop, resize and flip in a single grid_sample.
    n = len(x)
    area = _uniform(generator, x, (n,), *crop_scale)
    log_ratio = _uniform(generator, x, (n,), -0.2877, 0.2877)  # aspect ratio in [3/4, 4/3]
    ratio = log_ratio.exp()
    scale_x = (area * ratio).sqrt().clamp(max=1.0)
    scale_y = (area / ratio).sqrt().clamp(max=1.0)
    shift_x = (1 - scale_x) * _uniform(generator, x, (n,), -1.0, 1.0)
    shift_y = (1 - scale_y) * _uniform(generator, x, (n,), -1.0, 1.0)
    if flip:
        sign = torch.where(_uniform(generator, x, (n,)) < 0.5, -1.0, 1.0).to(x.dtype)
        scale_x = scale_x * sign
    theta = torch.zeros(n, 2, 3, device=x.device, dtype=x.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = scale_x, shift_x
    theta[:, 1, 1], theta[:, 1, 2] = scale_y, shift_y
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)


def _colour_jitter(x, generator, strength):
    if strength <= 0:
        return x
    n = len(x)
    brightness = _uniform(generator, x, (n, 1, 1, 1), -strength, strength)
    contrast = _uniform(generator, x, (n, 1, 1, 1), 1 - strength, 1 + strength)
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    x = (x - mean) * contrast + mean + brightness
    if x.shape[1] == 3:
        saturation = _uniform(generator, x, (n, 1, 1, 1), 1 - strength, 1 + strength)
        grey = x.mean(dim=1, keepdim=True)
        x = grey + (x - grey) * saturation
    return x


def augment_rows(x, generator, noise=0.1, corruption=0.2):
    """Gaussian noise plus feature corruption: each feature is replaced, with probability
    ``corruption``, by the same feature of another row of the batch (its marginal).

    Parameters
    ----------
    x : Tensor of shape (B, d)
        Standardised rows.
    """
    replace = _uniform(generator, x, x.shape) < corruption
    x = torch.where(replace, _shuffled_rows(x, generator), x)
    return x + noise * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _shuffled_rows(x, generator):
    # One random donor row per entry, so every feature draws from its own marginal.
    donors = torch.randint(len(x), x.shape, generator=generator, device=x.device)
    return torch.gather(x, 0, donors)


def synthetic_anomalies(x, generator):
    """Anomalous versions of normal samples: the negatives of the stage-2 detector.

    Images: a patch of another image of the batch, shifted, pasted at a random place (half
    of the batch), or a patch of strong noise (the other half). Rows: the four types of
    synthetic anomalies ADBench describes, a quarter of the batch each (see
    :func:`tabular_anomalies`).
    """
    if x.ndim == 2:
        return tabular_anomalies(x, generator)
    return _paste_patches(x, generator)


TABULAR_ANOMALY_TYPES = ("local", "global", "dependency", "clustered")


def tabular_anomalies(x, generator, kinds=None):
    """ADBench's synthetic anomaly types, built from a batch of standardised rows.

    Row ``i`` of the result is of type ``TABULAR_ANOMALY_TYPES[kinds[i]]`` (by default
    ``kinds[i] = i % 4``), made from row ``i`` of ``x`` and the batch:

    - "local": ``x_i + sqrt(a - 1) * (x_j - x_k) / sqrt(2)`` for random rows ``j, k`` and
      ``a`` in [2, 5]: the batch's spread around ``x_i`` widened ``a`` times in variance
      (ADBench scales the covariance of the normal data's mixture components);
    - "global": every feature uniform over the batch's range of it widened by 10 % on
      each side;
    - "dependency": every feature of a random 50-100 % of them from its own random row
      (a draw from the product of the marginals: the values are normal, their joint
      configuration is not);
    - "clustered": ``x_i + (a - 1) * (x_c - mean)`` with ``a`` in [2, 5] and ``x_c`` one
      row drawn per group of 8: the rows of a group move together, away from the batch's
      mean (ADBench scales the mixture components' means).

    Parameters
    ----------
    x : Tensor of shape (B, d)
    generator : torch.Generator
    kinds : Tensor of int of shape (B,), optional

    Returns
    -------
    Tensor of shape (B, d)
    """
    n, d = x.shape
    if kinds is None:
        kinds = torch.arange(n, device=x.device) % len(TABULAR_ANOMALY_TYPES)
    kinds = kinds.view(n, 1)
    # local: difference of two random rows, covariance 2 * Sigma, rescaled
    a = _uniform(generator, x, (n, 1), 2.0, 5.0)
    pair = torch.randint(n, (2, n), generator=generator, device=x.device)
    local = x + (a - 1).sqrt() * (x[pair[0]] - x[pair[1]]) / 2 ** 0.5
    # global: uniform over the widened range of each feature
    low, high = x.amin(dim=0), x.amax(dim=0)
    margin = 0.1 * (high - low)
    global_ = low - margin + (high - low + 2 * margin) * _uniform(generator, x, (n, d))
    # dependency: features from independent random rows, on a random half or more of them
    fraction = _uniform(generator, x, (n, 1), 0.5, 1.0)
    dependency = torch.where(_uniform(generator, x, (n, d)) < fraction,
                             _shuffled_rows(x, generator), x)
    # clustered: groups of 8 rows shifted together away from the mean
    group = torch.arange(n, device=x.device) // 8
    n_groups = int(group[-1]) + 1
    centres = x[torch.randint(n, (n_groups,), generator=generator, device=x.device)]
    scale = _uniform(generator, x, (n_groups, 1), 2.0, 5.0)
    shift = ((scale - 1) * (centres - x.mean(dim=0)))[group]
    clustered = x + shift
    return torch.where(kinds == 0, local, torch.where(
        kinds == 1, global_, torch.where(kinds == 2, dependency, clustered)))


def _paste_patches(x, generator):
    n = len(x)
    donors = x[torch.randperm(n, generator=generator, device=x.device)]
    donors = _random_resized_crop(donors, generator, (0.3, 1.0), flip=True)
    noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype) * 1.5
    use_noise = (torch.arange(n, device=x.device) % 2 == 1).view(n, 1, 1, 1)
    source = torch.where(use_noise, noise, donors)
    return torch.where(_random_boxes(x, generator), source, x)


def _random_boxes(x, generator, area=(0.05, 0.25)):
    """(B, 1, H, W) boolean masks of one random rectangle per image."""
    n, _, height, width = x.shape
    box_area = _uniform(generator, x, (n,), *area)
    ratio = _uniform(generator, x, (n,), -0.7, 0.7).exp()
    box_h = (box_area / ratio).sqrt().clamp(max=1.0)
    box_w = (box_area * ratio).sqrt().clamp(max=1.0)
    top = _uniform(generator, x, (n,)) * (1 - box_h)
    left = _uniform(generator, x, (n,)) * (1 - box_w)
    rows = (torch.arange(height, device=x.device, dtype=x.dtype) + 0.5) / height  # (H,)
    cols = (torch.arange(width, device=x.device, dtype=x.dtype) + 0.5) / width  # (W,)
    in_rows = (rows[None] >= top[:, None]) & (rows[None] < (top + box_h)[:, None])  # (B, H)
    in_cols = (cols[None] >= left[:, None]) & (cols[None] < (left + box_w)[:, None])  # (B, W)
    box = in_rows[:, :, None] & in_cols[:, None, :]  # (B, H, W)
    # a box thinner than a pixel would paste nothing; keep at least the nearest pixel
    centre_r = ((top + box_h / 2) * height).long().clamp(0, height - 1)
    centre_c = ((left + box_w / 2) * width).long().clamp(0, width - 1)
    box[torch.arange(n, device=x.device), centre_r, centre_c] = True
    return box[:, None]
