"""Torch's intra-op thread count, set for one call and restored after it.

Torch's worker threads spin while they wait for each other: on cores that other processes
also use, a call with as many threads as cores can run several times slower than with one.
The estimators therefore take scikit-learn's ``n_jobs`` and run each ``fit`` and scoring call
with that many threads, leaving torch's process-wide setting as they found it.
"""

import contextlib
import functools
import os
import threading

import torch
from joblib import effective_n_jobs

__all__ = ["n_threads", "torch_threads", "with_torch_threads"]

_lock = threading.Lock()
_depth = 0
_saved = None


def n_threads(n_jobs):
    """Threads for ``n_jobs``: None is 1; -1 is every core, -2 all but one, and so on, as in
    scikit-learn. Never more than the cores this process may use.

    None stays 1 inside joblib contexts too: in a worker of a parallel search (joblib's loky
    or Dask backend), the backend's job count is the number of workers, and giving each
    worker's fit that many threads again would oversubscribe the cores.
    """
    if n_jobs is None:
        return 1
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, min(int(effective_n_jobs(n_jobs)), cores or 1))


@contextlib.contextmanager
def torch_threads(n_jobs):
    """Run the block with ``n_threads(n_jobs)`` torch threads, then restore the count found.

    A nested block restores the count of the block around it; concurrent blocks (threads of
    one process, as in joblib's threading backend) share the count found by the first, which
    is restored when the last one ends.
    """
    global _depth, _saved
    with _lock:
        previous = torch.get_num_threads()
        if _depth == 0:
            _saved = previous
        _depth += 1
        torch.set_num_threads(n_threads(n_jobs))
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            torch.set_num_threads(_saved if _depth == 0 else previous)


def with_torch_threads(method):
    """Decorate an estimator method to run under ``torch_threads(self.n_jobs)``."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with torch_threads(self.n_jobs):
            return method(self, *args, **kwargs)
    return wrapper
