"""Tests of the epoch loop both stages share (skmcad._loop)."""

import pytest
import torch

from skmcad._loop import StageConfig, run_epochs


def _fit_mean(repeats, prepare=None, batch_size=4, epochs=2):
    """A scalar fitted to 10 values by SGD; returns (history, weight, steps, losses)."""
    X = torch.arange(10.0)
    weight = torch.zeros((), requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    calls = []

    def step_loss(batch):
        calls.append(batch)
        values = X[batch] if prepare is None else batch
        return (values - weight).square().mean()

    config = StageConfig(epochs=epochs, batch_size=batch_size, learning_rate=0.1)
    history = run_epochs(step_loss, X, config, optimizer, torch.Generator().manual_seed(0),
                         "test", prepare=prepare, repeats=repeats)
    return history, float(weight.detach()), calls


def test_each_prepared_batch_serves_repeats_steps():
    X = torch.arange(10.0)
    prepared = []

    def prepare(index):
        prepared.append(index)
        return X[index]

    history, _, calls = _fit_mean(3, prepare)
    assert len(history) == 2
    assert len(prepared) == 6  # 3 batches (4, 4, 2 samples) a epoch, prepared once each
    assert len(calls) == 18  # and each stepped 3 times
    for k in range(len(prepared)):  # the prepared batch itself, three times
        assert all(call is calls[3 * k] for call in calls[3 * k:3 * k + 3])


def test_repeats_are_optimiser_steps():
    # one batch of all 10 values: each SGD step (lr 0.1) takes w to 4.5 - 0.8 (4.5 - w)
    history, once, _ = _fit_mean(1, batch_size=10)
    _, echoed, _ = _fit_mean(4, batch_size=10)
    assert once == pytest.approx(4.5 * (1 - 0.8 ** 2))
    assert echoed == pytest.approx(4.5 * (1 - 0.8 ** 8))
    # the loss recorded is each epoch's batch's at its last step: 8.25 + (4.5 - w)^2
    assert history[0] == pytest.approx(8.25 + 4.5 ** 2)
