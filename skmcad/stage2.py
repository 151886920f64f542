"""Stage 2: the anomaly distance detector, a scorer (:mod:`skmcad.scorers`) on the frozen
stage-1 network's deviation maps, trained against synthetic anomalies."""

import torch
import torch.nn.functional as F

from ._loop import autocast, run_epochs
from .augmentations import synthetic_anomalies
from .stage1 import anomaly_batch

# The scorers have few parameters on standardised deviations: a large fixed step size
# trains them in a few epochs whatever the learning rate of stage 1.
SCORER_LEARNING_RATE = 0.05


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


def stage2_loss(network, scorer, x, generator, anomalies=None):
    """Weighted logistic loss of the scorer: the normal batch -> 0, its synthetic anomalies
    -> 1 and, in the unbalanced setting, labelled anomalies -> 1 with as much total weight
    as the synthetic ones."""
    parts = [x, synthetic_anomalies(x, generator)]
    if anomalies is not None:
        parts.append(anomalies)
    logits = scorer(*frozen_outputs(network, torch.cat(parts)))  # (B_total,)
    targets = torch.ones_like(logits)
    targets[:len(x)] = 0.0
    weights = torch.ones_like(targets)
    if anomalies is not None:
        weights[2 * len(x):] = len(x) / len(anomalies)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weights)


def train_stage2(network, scorer, X, config, generator, anomalies=None):
    """Fit a trainable scorer on frozen deviation maps; returns the mean loss of each
    epoch (none for a scorer stage 2 does not train)."""
    network.eval()
    if not scorer.trainable:
        return []
    optimizer = torch.optim.Adam(scorer.parameters(), lr=SCORER_LEARNING_RATE)

    def step_loss(index):
        xa = anomaly_batch(anomalies, len(index), generator)
        return stage2_loss(network, scorer, X[index], generator, xa)

    return run_epochs(step_loss, X, config, optimizer, generator, "stage 2")
