"""Stage 1: memory-augmented contrastive learning of the encoder, memories and heads,
after the pretrained backbone's last stages are adapted to the normal class."""

import torch
import torch.nn.functional as F

from ._loop import StageConfig, autocast, epoch_batches, run_epochs
from .augmentations import augment_images, augment_rows
from .nn.losses import anomaly_margin, mean_shifted_contrast, memory_consistency, nt_xent
from .nn.neighbour_memory import NearestNeighbourMemory
from .nn.network import deviation
from .nn.positions import positions
from .nn.pretrained_encoder import TAIL_FROM


def augment(x, generator):
    """Stage-1 view of a batch: image or tabular augmentation by the batch's rank."""
    return augment_rows(x, generator) if x.ndim == 2 else augment_images(x, generator)


def _learns(memory):
    return not isinstance(memory, NearestNeighbourMemory)


def initialize_memories(network, X, generator, batch_size):
    """Seed each memory that learns with features of a random batch of the training data.

    The kNN banks are left empty: stage 1 never reads them, and
    :func:`finalize_memories` fills them from every training image afterwards.
    """
    learning = [_learns(memory) for memory in network.memories]
    if not any(learning):
        return
    index = torch.randperm(len(X), generator=generator, device=generator.device)[:batch_size]
    with torch.no_grad():
        features = network.features(X[index])
    for memory, f, learns in zip(network.memories, features, learning):
        if learns:
            memory.initialize_from(f.float(), generator)


def _memory_terms(memory, f, retrieved, attention, config):
    """Consistency of features with their reads, plus the memory's own regulariser."""
    return (config.consistency_weight * memory_consistency(f, retrieved)
            + config.regularizer_weight * memory.regularizer(attention))


def stage1_loss(network, x1, x2, config, anomalies=None):
    """Memory-augmented contrast, summed over scales.

    View 1 is read through the memory, view 2 is used raw; NT-Xent pulls the pair's
    projections together. The consistency term pulls features and reads together, the
    memory's regulariser keeps prototypes spread and used. Labelled ``anomalies``
    (unbalanced setting) are extra contrastive negatives, and a margin keeps the memory from
    reconstructing them.
    """
    n = len(x1)
    batch = [x1, x2] if anomalies is None else [x1, x2, anomalies]
    features = network.features(torch.cat(batch))  # every view in one pass
    loss, n_terms = 0.0, 0
    for f, memory, head, trained in zip(features, network.memories, network.heads,
                                        network.learned_scales):
        if not trained:
            # the input scales of tables: a kNN bank learns nothing, a memory of input
            # prototypes learns by its own terms (the features have no parameters)
            if _learns(memory):
                loss = loss + _memory_terms(memory, f[:n], *memory(f[:n]), config)
                n_terms += 1
            continue
        n_terms += 1
        f1, f2, fa = f[:n], f[n:2 * n], f[2 * n:]
        negatives = head(fa) if anomalies is not None else None
        if not _learns(memory):  # no-memory ablation: plain SimCLR
            loss = loss + nt_xent(head(f1), head(f2), config.temperature, negatives)
            continue
        retrieved, attention = memory(f1)
        loss = loss + nt_xent(head(retrieved), head(f2), config.temperature, negatives)
        loss = loss + _memory_terms(memory, f1, retrieved, attention, config)
        if anomalies is not None:
            normal = deviation(f1, retrieved, network.distance).flatten(1).mean(1)
            anomalous = deviation(fa, memory(fa)[0], network.distance).flatten(1).mean(1)
            loss = loss + config.anomaly_weight * anomaly_margin(normal, anomalous)
    return loss / max(n_terms, 1)


def anomaly_batch(anomalies, batch_size, generator):
    """A random batch of the labelled anomalies ``anomalies`` (samples, or their row
    indices; a quarter of a normal batch, at least 2), or None in the one-class setting."""
    if anomalies is None:
        return None
    size = max(2, batch_size // 4)
    index = torch.randint(len(anomalies), (size,), generator=generator, device=generator.device)
    return anomalies[index]


def train_stage1(network, X, config, generator, anomalies=None):
    """Learn encoder, memories and heads jointly; returns the mean loss of each epoch.

    ``anomalies``: labelled anomalies (unbalanced setting), drawn into every step.
    """
    initialize_memories(network, X, generator, config.batch_size)
    if config.epochs == 0:  # the untrained-memory ablation
        network.eval()
        return []
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    steps = config.epochs * epoch_batches(X, config.batch_size)
    # OneCycleLR divides by the length of its warm-up, pct_start * total_steps - 1 steps: at
    # least half a step, so short fits work (pct_start is 0.1 from 15 steps on)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.learning_rate, total_steps=steps + 1,
        pct_start=max(0.1, 1.5 / (steps + 1)))

    def step_loss(index):
        x, xa = X[index], anomaly_batch(anomalies, len(index), generator)
        xa = None if xa is None else augment(xa, generator)
        with autocast(X.device):
            return stage1_loss(network, augment(x, generator), augment(x, generator), config, xa)

    network.train()
    history = run_epochs(step_loss, X, config, optimizer, generator, "stage 1", schedule)
    network.eval()
    return history


@torch.no_grad()
def finalize_memories(frozen, rows, generator):
    """Fill the kNN banks (the input scale of tables, the image scale, every scale without
    a learned memory) with the features of the training rows ``rows`` of ``frozen`` (a
    :class:`~skmcad.frozen_features.FrozenFeatures`), after stage 1.

    Each batch contributes its share of a random ``pool_size`` of the training positions
    (the bank's size, or more for a greedy coreset drawn from them), so the banks never
    hold more than that at once. Each stored vector keeps the row it
    came from (for :func:`skmcad.nn.neighbour_memory.leave_one_out`).
    """
    network = frozen.network
    banks = [not _learns(memory) for memory in network.memories]
    if not any(banks):
        return
    network.eval()
    kept = [([], []) for _ in banks]
    for start in range(0, len(rows), frozen.batch_size):
        batch = rows[start:start + frozen.batch_size]
        for (parts, who), memory, f, bank in zip(kept, network.memories,
                                                 frozen.features(batch), banks):
            if not bank:
                continue
            vectors = positions(f)  # (B*H*W, C)
            share = -(-memory.pool_size * len(vectors)
                      // (len(rows) * f.shape[2] * f.shape[3]))
            pick = torch.randperm(len(vectors), generator=generator,
                                  device=vectors.device)[:share]
            parts.append(vectors[pick])
            who.append(batch.repeat_interleave(f.shape[2] * f.shape[3])[pick])
    for (parts, who), memory, bank in zip(kept, network.memories, banks):
        if bank:
            memory.initialize_from(torch.cat(parts)[:, :, None, None], generator,
                                   owners=torch.cat(who))


# Backbone adaptation: Mean-Shifted Contrastive Learning's settings, scaled to a small
# backbone on CPU (batch 64, a learning rate low enough that a few epochs move the
# ImageNet features without forgetting them: at 160 px, 5e-6 scored as 1e-5 and 3e-5 lower).
ADAPT = dict(batch_size=64, learning_rate=1e-5, temperature=0.25, weight_decay=5e-5)
# At most this many epochs: on a small training set ``adapt_steps`` would otherwise mean
# many passes over few images (on CIFAR-10 classes of 1,000 images at 160 px, 4 epochs of 15
# batches scored above 7: docs/benchmarks.md, "How long to adapt").
ADAPT_MAX_EPOCHS = 8
# Views of each image, drawn once: itself, its mirror image and this many random crops of
# ADAPT_CROP_SCALE of its area (mirrored at random); a step contrasts two different ones.
ADAPT_CROPS = 2
ADAPT_CROP_SCALE = (0.5, 1.0)
# The crops' colour jitter and greyscale probability: none. SimCLR's (0.4 and 0.2) added only
# 0.001 of mean AUROC on CIFAR-10 at 160 px (ahead on 7 classes, behind on 2), and with crops
# of 20-100 % 0.0002 (docs/benchmarks.md).
ADAPT_JITTER = 0.0
ADAPT_GREY = 0.0
# Whether each step adds a copy of each image turned by 90, 180 or 270 degrees (180 for
# images that are not square) as an extra negative of the contrast: +0.001 of mean AUROC on
# CIFAR-10 at 160 px for a third more fit time, so off (docs/benchmarks.md).
ADAPT_ROTATED_NEGATIVES = False
# Weight of a pull of the tail's weights towards the pretrained ones (L2-SP: the loss adds
# this times the squared distance between them), against drifting from ImageNet's features:
# with it neither a higher learning rate nor a longer adaptation scored above the default on
# CIFAR-10 at 160 px, so 0 (docs/benchmarks.md).
ADAPT_ANCHOR = 0.0


def _views(X, generator, batch_size):
    """The adaptation's views of the (N, C, H, W) images ``X``: a list of tensors like it."""
    crops = [torch.cat([augment_images(part, generator, crop_scale=ADAPT_CROP_SCALE,
                                       jitter=ADAPT_JITTER, grey_prob=ADAPT_GREY)
                        for part in X.split(batch_size)])
             for _ in range(ADAPT_CROPS)]
    return [X, X.flip(-1), *crops]


def _rotated(X, generator):
    """Each of the (N, C, H, W) images ``X`` turned by a random multiple of 90 degrees
    (not 0; 180 when H != W)."""
    if X.shape[-1] != X.shape[-2]:
        return X.flip(-1, -2)
    turns = torch.randint(1, 4, (len(X),), generator=generator, device=generator.device)
    out = torch.empty_like(X)
    for k in (1, 2, 3):
        pick = turns == k
        out[pick] = torch.rot90(X[pick], k, dims=(-2, -1))
    return out


def _cached_boundary(encoder, X, batch_size):
    """The frozen stage-5 maps of ``X``, (N, 112, h, w): the tail's input, computed once."""
    return torch.cat([encoder.front_maps(part)[TAIL_FROM - 1]
                      for part in X.split(batch_size)])


def _pooled_embedding(encoder, boundary):
    """Unit, globally pooled map of the deepest stage read, (B, C), from stage-5 maps."""
    deepest = encoder.tail_maps(boundary)[encoder.tail_stages[-1]]  # (B, C, h, w)
    return F.normalize(deepest.mean(dim=(2, 3)), dim=1)


def adapt_backbone(encoder, X, steps, generator, verbose=0):
    """Fine-tune the pretrained encoder's tail (stages 6-7) on the normal images ``X`` by
    mean-shifted contrast (:func:`skmcad.nn.losses.mean_shifted_contrast`); returns the
    mean loss of each epoch, ``[]`` when there is nothing to adapt.

    ``steps`` fewer than an epoch's batches are one epoch over a random part of ``X``
    (``steps`` batches of it); more are rounded to whole epochs over ``X``, at most
    ``ADAPT_MAX_EPOCHS`` (0 adapts nothing).
    Each image has ``2 + ADAPT_CROPS`` views (:func:`_views`), run once through the frozen
    stages; each step then runs the tail only, on two different views of each image (and,
    with ``ADAPT_ROTATED_NEGATIVES``, on a turned copy of it, a negative). The centre is the
    unit mean of the images' initial embeddings, fixed; ``ADAPT_ANCHOR`` pulls the tail's
    weights towards the pretrained ones. The tail is frozen again on return.
    """
    if steps == 0 or not getattr(encoder, "tail_stages", None):
        return []
    batches = epoch_batches(X, ADAPT["batch_size"])
    if steps < batches:
        # One epoch over a random part of X: on 5,000 CIFAR-10 images the full epoch's 71
        # steps scored as 60 with more fit time and memory, and more epochs scored lower.
        keep = torch.randperm(len(X), generator=generator, device=generator.device)
        X = X[keep[:steps * ADAPT["batch_size"]]]
    epochs = min(max(1, round(steps / batches)), ADAPT_MAX_EPOCHS)
    config = StageConfig(epochs=epochs, verbose=verbose, **ADAPT)
    views = torch.stack([_cached_boundary(encoder, view, config.batch_size)
                         for view in _views(X, generator, config.batch_size)])  # (V, N, ...)
    rotated = (_cached_boundary(encoder, _rotated(X, generator), config.batch_size)
               if ADAPT_ROTATED_NEGATIVES else None)
    with torch.no_grad():
        centre = F.normalize(torch.cat([_pooled_embedding(encoder, part) for part in
                                        views[0].split(config.batch_size)]).mean(0), dim=0)
    pretrained = [p.detach().clone() for p in encoder.tail.parameters()] if ADAPT_ANCHOR else []
    encoder.tail.requires_grad_(True)
    optimizer = torch.optim.Adam(encoder.tail.parameters(), lr=config.learning_rate,
                                 weight_decay=config.weight_decay)

    def step_loss(index):
        n_views, device = len(views), generator.device
        first = torch.randint(n_views, (len(index),), generator=generator, device=device)
        other = torch.randint(1, n_views, (len(index),), generator=generator, device=device)
        second = (first + other) % n_views  # never the first
        batch = [views[first, index], views[second, index]]
        if rotated is not None:
            batch.append(rotated[index])
        z = _pooled_embedding(encoder, torch.cat(batch)).split(len(index))  # (B, C) each
        loss = mean_shifted_contrast(z[0], z[1], centre, config.temperature,
                                     z[2] if rotated is not None else None)
        if ADAPT_ANCHOR:
            loss = loss + ADAPT_ANCHOR * sum((p - p0).pow(2).sum() for p, p0 in
                                             zip(encoder.tail.parameters(), pretrained))
        return loss

    try:
        return run_epochs(step_loss, views[0], config, optimizer, generator, "backbone")
    finally:
        encoder.tail.requires_grad_(False)
