"""Stage 2: the anomaly distance detector, a scorer (:mod:`skmcad.scorers`) on the frozen
stage-1 network's deviation maps, trained against synthetic anomalies."""

import torch
import torch.nn.functional as F

from ._loop import run_epochs
from .augmentations import synthetic_anomalies
from .stage1 import anomaly_batch


def stage2_batch(frozen, rows, generator, anomaly_rows=None):
    """What the scorer trains on for the normal training rows ``rows`` of ``frozen`` (a
    :class:`~skmcad.frozen_features.FrozenFeatures`): ``(outputs, targets, weights)``.

    The outputs are those of the rows (target 0), of their synthetic anomalies (target 1)
    and, in the unbalanced setting, of the labelled anomalies ``anomaly_rows`` of ``frozen``
    (target 1, weighted to as much total weight as the synthetic ones).
    """
    parts = [frozen.outputs(rows),
             frozen.outputs(rows, synthetic_anomalies(frozen.X[rows], generator))]
    if anomaly_rows is not None:
        parts.append(frozen.outputs(anomaly_rows))
    # [maps, features]: each scale's parts concatenated
    outputs = [[torch.cat(scale) for scale in zip(*kind)] for kind in zip(*parts)]
    n, dtype, device = len(rows), frozen.X.dtype, frozen.X.device
    targets = torch.ones(len(outputs[0][0]), dtype=dtype, device=device)
    targets[:n] = 0.0
    weights = torch.ones_like(targets)
    if anomaly_rows is not None:
        weights[2 * n:] = n / len(anomaly_rows)
    return outputs, targets, weights


def stage2_loss(scorer, batch):
    """Weighted logistic loss of the scorer's logits on a :func:`stage2_batch`."""
    outputs, targets, weights = batch
    logits = scorer(*outputs)  # (B_total,)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def train_stage2(frozen, rows, scorer, config, generator, anomaly_rows=None):
    """Fit a trainable scorer on the frozen network's deviation maps of the normal training
    rows ``rows`` of ``frozen`` (a :class:`~skmcad.frozen_features.FrozenFeatures`), of
    their synthetic anomalies and of the labelled anomalies ``anomaly_rows``; returns the
    mean loss of each epoch (none for a scorer stage 2 does not train).

    Each batch's outputs are computed once and reused for ``scorer.echo_steps`` optimiser
    steps (data echoing): the frozen network's forward pass is the cost, the scorer's step
    is cheap, and a scorer with more parameters needs more steps than an epoch has batches.
    """
    frozen.network.eval()
    if not scorer.trainable:
        return []
    optimizer = torch.optim.Adam(scorer.parameters(), lr=scorer.learning_rate)

    def prepare(index):
        return stage2_batch(frozen, rows[index], generator,
                            anomaly_batch(anomaly_rows, len(index), generator))

    return run_epochs(lambda batch: stage2_loss(scorer, batch), frozen.X[rows], config,
                      optimizer, generator, "stage 2", prepare=prepare,
                      repeats=scorer.echo_steps)
