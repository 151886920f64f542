"""What the frozen network gives a scorer: deviation maps and feature maps, of a batch of
inputs or of training rows whose features are computed once per fit."""

from contextlib import nullcontext

import torch

from ._loop import autocast
from .nn.neighbour_memory import leave_one_out

# Most bytes of training features a fit keeps; above it every read recomputes them. The
# default image network at 160 px takes about 52 KB an image: 20,000 images fit.
MAX_BYTES = 2**30


def in_dtype(maps, features, dtype):
    """``(maps, features)`` cast to the inputs' ``dtype`` (from autocast's)."""
    return [d.to(dtype) for d in maps], [f.to(dtype) for f in features]


@torch.no_grad()
def frozen_outputs(network, x):
    """Deviation maps and feature maps of a batch: what a scorer reads, in ``x``'s dtype."""
    with autocast(x.device):
        maps, features = network.deviation_maps(x, with_features=True)
    return in_dtype(maps, features, x.dtype)


class FrozenFeatures:
    """The frozen ``network``'s feature maps of the training rows ``X``, computed once.

    After stage 1 a fit reads the training rows through the same frozen network four
    times: to fill the kNN banks, for the held-out statistics, in stage 2's normal batches
    and for the training scores. The features are computed once, batch by batch, and kept
    on ``X``'s device when they take at most ``max_bytes`` (None: :data:`MAX_BYTES`);
    otherwise each read computes them again. Rows are named by their index in ``X``, as the
    banks name the rows their vectors come from.
    """

    def __init__(self, network, X, batch_size, max_bytes=None):
        self.network, self.X, self.batch_size = network, X, batch_size
        self.stored = None
        first = self._compute(X[:batch_size])
        row_bytes = sum(f[0].numel() * f.element_size() for f in first)
        if row_bytes * len(X) <= (MAX_BYTES if max_bytes is None else max_bytes):
            rest = [self._compute(X[start:start + batch_size])
                    for start in range(batch_size, len(X), batch_size)]
            self.stored = [torch.cat(scale) for scale in zip(first, *rest)]  # (N, C_s, H_s, W_s)

    @torch.no_grad()
    def _compute(self, x):
        with autocast(x.device):
            return self.network.features(x)

    def features(self, rows):
        """The feature maps of the rows ``rows`` (an index tensor), one per scale."""
        if self.stored is None:
            return self._compute(self.X[rows])
        return [f[rows] for f in self.stored]

    @torch.no_grad()
    def outputs(self, rows, images=None, unseen=False):
        """:func:`frozen_outputs` of the rows ``rows``, or of ``images`` made from them (one
        each, such as their synthetic anomalies); with ``unseen``, read without the rows'
        own vectors in the kNN banks (:func:`~skmcad.nn.neighbour_memory.leave_one_out`)."""
        features = self.features(rows) if images is None else self._compute(images)
        with leave_one_out(self.network, rows) if unseen else nullcontext(), \
                autocast(self.X.device):
            maps, features = self.network.deviations(features, with_features=True)
        return in_dtype(maps, features, self.X.dtype)

    def batches(self, rows, unseen=False):
        """:meth:`outputs` of ``rows``, batch after batch."""
        for start in range(0, len(rows), self.batch_size):
            yield self.outputs(rows[start:start + self.batch_size], unseen=unseen)
