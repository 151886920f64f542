"""Scoring speed of MCAD's image default, step by step, in one process: the previous default
(random banks of 16,384 positions) as it was scored before (every stride-2 convolution of the
backbone on a zero-padded copy of its input; the bank searched 4,096 queries at a time), with
each of the two scoring changes, with both, then the default of greedy banks of 4,096.
The scores of the first four are the same (the changes compute the same numbers).

Usage: python scoring_speed.py DATA OUT_CSV [CLASS]  (1,000 training and 2,000 test images
of the class, the protocol of docs/benchmarks.md's CIFAR-10 runs; 2 torch threads; each
configuration scores the test images 3 times, in turn with the others).
"""

import sys
import time

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.metrics import roc_auc_score

from skmcad import MCADDetector
from skmcad.benchmark.protocols import Cifar10
from skmcad.nn import efficientnet, neighbour_memory

REPEATS = 3


def padded_copy_forward(self, x):
    """The stride-2 'same' convolution as it was: the input padded into a new tensor."""
    if self.tf_same:
        ph = self._pad_amount(x.shape[-2], self.kernel_size[0], self.stride[0])
        pw = self._pad_amount(x.shape[-1], self.kernel_size[1], self.stride[1])
        x = F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))
    return torch.nn.Conv2d.forward(self, x)


def main(data_dir, out, subset="0"):
    task = next(iter(Cifar10(data_dir, max_train=1000, max_test=2000).load_tasks(subset)))
    X, y = task.X_eval, task.y_eval
    fits = {}
    for name, params in (("random 16,384", dict(bank_size=16384, bank_coreset="random")),
                         ("greedy 4,096 (default)", {})):
        start = time.perf_counter()
        fits[name] = MCADDetector(random_state=0, n_jobs=2, **params).fit(task.X_fit)
        fits[name].fit_seconds_ = time.perf_counter() - start
    new_forward = efficientnet.Conv2dSame.forward
    old_chunk = 4096 * 16384  # 4,096 queries a chunk against a bank of 16,384
    configs = [
        ("random 16,384", "padded copy", old_chunk),
        ("random 16,384", "zero tap", old_chunk),
        ("random 16,384", "padded copy", neighbour_memory.CHUNK_ELEMENTS),
        ("random 16,384", "zero tap", neighbour_memory.CHUNK_ELEMENTS),
        ("greedy 4,096 (default)", "zero tap", neighbour_memory.CHUNK_ELEMENTS),
    ]
    speeds, scores = {c: [] for c in configs}, {}
    fits["random 16,384"].decision_function(X[:256])  # warm-up
    for _ in range(REPEATS):
        for config in configs:
            bank, padding, chunk = config
            efficientnet.Conv2dSame.forward = (padded_copy_forward if padding == "padded copy"
                                               else new_forward)
            neighbour_memory.CHUNK_ELEMENTS = chunk
            start = time.perf_counter()
            scores[config] = fits[bank].decision_function(X)
            speeds[config].append(len(X) / (time.perf_counter() - start))
    rows = [{"banks": bank, "stride-2 padding": padding,
             "queries a chunk": chunk // len(fits[bank].network_.memories[0].bank),
             "images/s (median of 3)": np.median(speeds[(bank, padding, chunk)]),
             "images/s (each)": " ".join(f"{s:.1f}" for s in speeds[(bank, padding, chunk)]),
             "auroc": roc_auc_score(y, scores[(bank, padding, chunk)]),
             "largest score change vs first row": np.abs(
                 scores[(bank, padding, chunk)] - scores[configs[0]]).max()
             if bank == configs[0][0] else np.nan,
             "fit s": fits[bank].fit_seconds_}
            for bank, padding, chunk in configs]
    table = pd.DataFrame(rows)
    table.to_csv(out, index=False)
    print(table.to_string())


if __name__ == "__main__":
    main(*sys.argv[1:])
