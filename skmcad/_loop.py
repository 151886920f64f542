"""The epoch loop both training stages share, and its small parts.

Data arrive as one standardised tensor on the training device; mini-batches are index
slices of it, so nothing moves between host and device inside the loop.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

# On tables an epoch is at most this many batches (a random 1,280 rows at batch 128): a fit
# costs about the same on 3,000 rows as on 30,000, and the learned scales keep what a short
# stage 1 gives them (on ODDS's five largest sets, 10 scored 0.779, 20 0.770, no cap 0.764).
TABULAR_EPOCH_BATCHES = 10


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


def run_epochs(step_loss, X, config, optimizer, generator, stage, schedule=None,
               prepare=None, repeats=1):
    """Train for ``config.epochs`` epochs of random mini-batches of ``X``.

    ``step_loss(batch)`` returns the loss of a batch, where ``batch`` is ``prepare(index)``
    (the indices ``index`` of ``X`` themselves without ``prepare``); each step
    back-propagates it and steps ``optimizer`` (and ``schedule``). A prepared batch serves
    ``repeats`` steps (data echoing: worth it where preparing costs more than a step).
    Returns the mean loss of each epoch (of each batch's last step).
    """
    history, progress = [], EpochProgress(config.epochs, config.verbose, stage)
    try:
        for epoch in range(config.epochs):
            losses = []
            for index in minibatches(len(X), config.batch_size, generator,
                                     epoch_batches(X, config.batch_size)):
                batch = index if prepare is None else prepare(index)
                for _ in range(repeats):
                    loss = step_loss(batch)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if schedule is not None:
                        schedule.step()
                losses.append(loss.detach())
            history.append(_epoch_mean(losses))
            progress.report(epoch, history[-1])
    finally:
        progress.close()
    return history


def _epoch_mean(losses):
    # one host sync per epoch, not per step
    return float(torch.stack(losses).float().mean()) if losses else float("nan")
