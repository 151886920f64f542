"""The two training stages, split into small steps.

Data arrive as one standardised float32 tensor on the training device; mini-batches are
index slices of it, so nothing moves between host and device inside the loops.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .augmentations import augment_images, augment_rows, synthetic_anomalies
from .losses import anomaly_margin, memory_consistency, memory_regularizer, nt_xent
from .networks import deviation
from .memory import HopfieldMemory, NearestNeighbourMemory, _positions

# The scorer is a handful of parameters on pooled, standardised deviations: a large fixed
# step size trains it in a few epochs whatever the learning rate of stage 1.
SCORER_LEARNING_RATE = 0.05


@dataclass
class StageConfig:
    """What one training stage needs besides the modules and the data."""

    epochs: int
    batch_size: int
    learning_rate: float
    temperature: float = 0.2
    consistency_weight: float = 1.0
    regularizer_weight: float = 0.1
    anomaly_weight: float = 1.0
    weight_decay: float = 1e-4
    verbose: int = 0


# On tables an epoch is at most this many batches (a random 1,280 rows at batch 128): a fit
# costs about the same on 3,000 rows as on 30,000, and the learned scales keep what a short
# stage 1 gives them (on ODDS's five largest sets, 10 scored 0.779, 20 0.770, no cap 0.764).
TABULAR_EPOCH_BATCHES = 10


def epoch_batches(X, batch_size):
    """Batches in one epoch over ``X``: all of them for images, at most
    :data:`TABULAR_EPOCH_BATCHES` for tables."""
    batches = max(1, -(-len(X) // batch_size))
    return min(batches, TABULAR_EPOCH_BATCHES) if X.ndim == 2 else batches


def minibatches(n, batch_size, generator, max_batches=None):
    """Random index batches over ``n`` samples, at most ``max_batches`` of them; a last
    batch of one sample is dropped (batch norm and the contrastive loss need two)."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    for count, start in enumerate(range(0, n, batch_size)):
        if max_batches is not None and count >= max_batches:
            return
        index = order[start:start + batch_size]
        if len(index) >= 2:
            yield index


def augment(x, generator):
    """Stage-1 view of a batch: image or tabular augmentation by the batch's rank."""
    return augment_rows(x, generator) if x.ndim == 2 else augment_images(x, generator)


def autocast(device):
    """bfloat16 autocast on CUDA; plain float32 elsewhere."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return nullcontext()


class EpochProgress:
    """Reports per-epoch losses: ``verbose=1`` a progress bar, ``verbose=2`` one line each."""

    def __init__(self, epochs, verbose, stage):
        self.verbose, self.stage = verbose, stage
        self.bar = tqdm(total=epochs, desc=stage) if verbose == 1 else None  # stays when done

    def report(self, epoch, loss):
        if self.bar is not None:
            self.bar.set_postfix(loss=f"{loss:.4f}")
            self.bar.update()
        elif self.verbose >= 2:
            print(f"[{self.stage}] epoch {epoch + 1}: loss {loss:.4f}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()


def initialize_memories(network, X, generator, batch_size):
    """Seed each memory with features of a random batch of the training data."""
    index = torch.randperm(len(X), generator=generator, device=generator.device)[:batch_size]
    with torch.no_grad():
        features = network.features(X[index])
    for memory, f in zip(network.memories, features):
        memory.initialize_from(f.float(), generator)


def stage1_loss(network, x1, x2, config, anomalies=None):
    """Memory-augmented contrast, summed over scales.

    View 1 is read through the memory, view 2 is used raw; NT-Xent pulls the pair's
    projections together. The consistency term pulls features and reads together, the
    regulariser keeps prototypes spread and used. Labelled ``anomalies`` (unbalanced
    setting) are extra contrastive negatives, and a margin keeps the memory from
    reconstructing them.
    """
    n = len(x1)
    batch = [x1, x2] if anomalies is None else [x1, x2, anomalies]
    features = network.features(torch.cat(batch))  # every view in one pass
    learned = getattr(network, "learned_scales", [True] * len(features))
    loss, n_terms = 0.0, 0
    for f, memory, head, trained in zip(features, network.memories, network.heads, learned):
        if not trained:
            # the input scales of tables: a kNN bank learns nothing, a memory of input
            # prototypes learns by its own terms (the features have no parameters)
            if isinstance(memory, HopfieldMemory):
                retrieved, attention = memory(f[:n])
                loss = loss + config.consistency_weight * memory_consistency(f[:n], retrieved)
                loss = loss + config.regularizer_weight * memory_regularizer(
                    memory.prototypes, attention)
                n_terms += 1
            continue
        n_terms += 1
        f1, f2, fa = f[:n], f[n:2 * n], f[2 * n:]
        negatives = head(fa) if anomalies is not None else None
        if not isinstance(memory, HopfieldMemory):  # no-memory ablation: plain SimCLR
            loss = loss + nt_xent(head(f1), head(f2), config.temperature, negatives)
            continue
        retrieved, attention = memory(f1)
        loss = loss + nt_xent(head(retrieved), head(f2), config.temperature, negatives)
        loss = loss + config.consistency_weight * memory_consistency(f1, retrieved)
        loss = loss + config.regularizer_weight * memory_regularizer(memory.prototypes, attention)
        if anomalies is not None:
            normal = deviation(f1, retrieved, network.distance).flatten(1).mean(1)
            anomalous = deviation(fa, memory(fa)[0], network.distance).flatten(1).mean(1)
            loss = loss + config.anomaly_weight * anomaly_margin(normal, anomalous)
    return loss / max(n_terms, 1)


def anomaly_batch(anomalies, batch_size, generator):
    """A random batch of labelled anomalies (a quarter of a normal batch, at least 2), or
    None in the one-class setting."""
    if anomalies is None:
        return None
    size = max(2, batch_size // 4)
    index = torch.randint(len(anomalies), (size,), generator=generator, device=generator.device)
    return anomalies[index]


def train_stage1(network, X, config, generator, anomalies=None):
    """Learn encoder, memories and heads jointly; returns the mean loss of each epoch.

    ``anomalies``: labelled anomalies (unbalanced setting), drawn into every step.
    """
    device = X.device
    initialize_memories(network, X, generator, config.batch_size)
    if config.epochs == 0:  # the untrained-memory ablation
        network.eval()
        return []
    params = [p for p in network.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate,
                                  weight_decay=config.weight_decay)
    per_epoch = epoch_batches(X, config.batch_size)
    steps = config.epochs * per_epoch
    # OneCycleLR divides by the length of its warm-up, pct_start * total_steps - 1 steps: at
    # least half a step, so short fits work (pct_start is 0.1 from 15 steps on)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.learning_rate, total_steps=steps + 1,
        pct_start=max(0.1, 1.5 / (steps + 1)))
    network.train()
    history, progress = [], EpochProgress(config.epochs, config.verbose, "stage 1")
    try:
        for epoch in range(config.epochs):
            losses = []
            for index in minibatches(len(X), config.batch_size, generator, per_epoch):
                x, xa = X[index], anomaly_batch(anomalies, len(index), generator)
                xa = None if xa is None else augment(xa, generator)
                with autocast(device):
                    loss = stage1_loss(network, augment(x, generator), augment(x, generator),
                                       config, xa)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                losses.append(loss.detach())
            history.append(_epoch_mean(losses))
            progress.report(epoch, history[-1])
    finally:
        progress.close()
    network.eval()
    return history


def _epoch_mean(losses):
    # one host sync per epoch, not per step
    return float(torch.stack(losses).float().mean()) if losses else float("nan")


@torch.no_grad()
def finalize_memories(network, X, batch_size, generator):
    """Fill the kNN banks (the input scale of tables, every scale of the no-memory
    ablation) with training features, after stage 1.

    Each batch contributes its share of a random ``bank_size`` of the training positions,
    so the banks never hold more than that at once.
    """
    banks = [isinstance(memory, NearestNeighbourMemory) for memory in network.memories]
    if not any(banks):
        return
    network.eval()
    kept = [[] for _ in banks]
    for start in range(0, len(X), batch_size):
        features = network.features(X[start:start + batch_size])
        for parts, memory, f, bank in zip(kept, network.memories, features, banks):
            if not bank:
                continue
            vectors = _positions(f)  # (B*H*W, C)
            share = -(-memory.bank_size * len(vectors) // (len(X) * f.shape[2] * f.shape[3]))
            pick = torch.randperm(len(vectors), generator=generator, device=vectors.device)
            parts.append(vectors[pick[:share]])
    for parts, memory, bank in zip(kept, network.memories, banks):
        if bank:
            memory.initialize_from(torch.cat(parts)[:, :, None, None], generator)


@torch.no_grad()
def deviation_maps(network, x):
    """Frozen stage-1 deviation maps of a batch, in float32 (float64 for tabular data)."""
    with autocast(x.device):
        maps = network.deviation_maps(x)
    return [d.to(x.dtype) for d in maps]


@torch.no_grad()
def frozen_outputs(network, x):
    """Deviation maps and pooled descriptors of a batch: what the stage-2 scorer reads."""
    with autocast(x.device):
        maps, descriptors = network.deviation_maps(x, with_descriptors=True)
    return [d.to(x.dtype) for d in maps], descriptors.to(x.dtype)


def deviation_statistics(network, X, batch_size):
    """Per-scale mean and standard deviation of deviation values over all positions."""
    totals = None
    for start in range(0, len(X), batch_size):
        maps = deviation_maps(network, X[start:start + batch_size])
        batch = [(d.sum(), d.pow(2).sum(), d.numel()) for d in maps]
        totals = batch if totals is None else [
            (a + x, b + y, c + z) for (a, b, c), (x, y, z) in zip(totals, batch)]
    means, stds = [], []
    for total, total_sq, count in totals:
        mean = float(total) / count
        means.append(mean)
        stds.append(np.sqrt(max(float(total_sq) / count - mean ** 2, 0.0)))
    return means, stds


def stage2_loss(network, scorer, x, generator, anomalies=None):
    """Weighted logistic loss of the scorer: the normal batch -> 0, its synthetic anomalies
    -> 1 and, in the unbalanced setting, labelled anomalies -> 1 with as much total weight
    as the synthetic ones."""
    parts = [x, synthetic_anomalies(x, generator)]
    if anomalies is not None:
        parts.append(anomalies)
    maps, descriptors = frozen_outputs(network, torch.cat(parts))
    logits = scorer(maps, descriptors)  # (B_total,)
    targets = torch.ones_like(logits)
    targets[:len(x)] = 0.0
    weights = torch.ones_like(targets)
    if anomalies is not None:
        weights[2 * len(x):] = len(x) / len(anomalies)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def train_stage2(network, scorer, X, config, generator, anomalies=None):
    """Fit the scorer on frozen deviation maps; returns the mean loss of each epoch."""
    network.eval()
    optimizer = torch.optim.Adam(scorer.parameters(), lr=SCORER_LEARNING_RATE)
    history, progress = [], EpochProgress(config.epochs, config.verbose, "stage 2")
    try:
        for epoch in range(config.epochs):
            losses = []
            for index in minibatches(len(X), config.batch_size, generator,
                                     epoch_batches(X, config.batch_size)):
                xa = anomaly_batch(anomalies, len(index), generator)
                loss = stage2_loss(network, scorer, X[index], generator, xa)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                losses.append(loss.detach())
            history.append(_epoch_mean(losses))
            progress.report(epoch, history[-1])
    finally:
        progress.close()
    return history
