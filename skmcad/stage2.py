"""Stage 2: the anomaly distance detector, a scorer (:mod:`skmcad.scorers`) on the frozen
stage-1 network's deviation maps, trained against synthetic anomalies."""

import torch
import torch.nn.functional as F

from ._loop import autocast, run_epochs
from .augmentations import synthetic_anomalies
from .stage1 import anomaly_batch


@torch.no_grad()
def frozen_outputs(network, x):
    """Deviation maps and feature maps of a batch: what a scorer reads, in ``x``'s dtype."""
    with autocast(x.device):
        maps, features = network.deviation_maps(x, with_features=True)
    return [d.to(x.dtype) for d in maps], [f.to(x.dtype) for f in features]


def batched_outputs(network, X, batch_size):
    """:func:`frozen_outputs` of ``X``, batch after batch."""
    for start in range(0, len(X), batch_size):
        yield frozen_outputs(network, X[start:start + batch_size])


def stage2_batch(network, x, generator, anomalies=None):
    """What the scorer trains on for the normal batch ``x``: ``(outputs, targets, weights)``.

    The outputs are those of ``x`` (target 0), of its synthetic anomalies (target 1) and, in
    the unbalanced setting, of the labelled ``anomalies`` (target 1, weighted to as much
    total weight as the synthetic ones).
    """
    parts = [x, synthetic_anomalies(x, generator)]
    if anomalies is not None:
        parts.append(anomalies)
    inputs = torch.cat(parts)
    outputs = frozen_outputs(network, inputs)
    targets = torch.ones(len(inputs), dtype=x.dtype, device=x.device)
    targets[:len(x)] = 0.0
    weights = torch.ones_like(targets)
    if anomalies is not None:
        weights[2 * len(x):] = len(x) / len(anomalies)
    return outputs, targets, weights


def stage2_loss(scorer, batch):
    """Weighted logistic loss of the scorer's logits on a :func:`stage2_batch`."""
    outputs, targets, weights = batch
    logits = scorer(*outputs)  # (B_total,)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def train_stage2(network, scorer, X, config, generator, anomalies=None):
    """Fit a trainable scorer on frozen deviation maps; returns the mean loss of each
    epoch (none for a scorer stage 2 does not train).

    Each batch's outputs are computed once and reused for ``scorer.echo_steps`` optimiser
    steps (data echoing): the frozen network's forward pass is the cost, the scorer's step
    is cheap, and a scorer with more parameters needs more steps than an epoch has batches.
    """
    network.eval()
    if not scorer.trainable:
        return []
    optimizer = torch.optim.Adam(scorer.parameters(), lr=scorer.learning_rate)

    def prepare(index):
        return stage2_batch(network, X[index], generator,
                            anomaly_batch(anomalies, len(index), generator))

    return run_epochs(lambda batch: stage2_loss(scorer, batch), X, config, optimizer,
                      generator, "stage 2", prepare=prepare, repeats=scorer.echo_steps)
