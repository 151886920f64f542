"""Resource measurements for one benchmark run: wall time and peak resident memory.

Peak memory is the growth of the process's resident set size (RSS) above its level just
before the run, in MiB. On Linux the kernel's own high-water mark (``VmHWM``) is reset
through ``/proc/self/clear_refs`` before each run, so the peak is exact and not sampled;
where that reset is refused, a background thread samples the RSS every ``interval``
seconds instead (a short spike between two samples can then be missed). Python-level
tools such as ``tracemalloc`` do not see torch's or BLAS's native allocations, hence RSS.

Caveat: memory freed by an earlier run and kept by an allocator pool can be reused
without raising the RSS, so the growth is a lower bound of what a run allocates. Before
each run the garbage collector runs and glibc is asked to give freed memory back
(``malloc_trim``) to keep that effect small.
"""

import ctypes
import gc
import os
import threading
import time


_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_MIB = float(2**20)


def current_rss_bytes():
    """Return this process's resident set size in bytes, or NaN where /proc is missing."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return float("nan")


def _hwm_bytes():
    """Return the kernel's peak RSS (``VmHWM``) of this process in bytes, or NaN."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        pass
    return float("nan")


def reset_hwm():
    """Reset ``VmHWM`` to the current RSS; return whether the kernel accepted it."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _release_free_memory():
    """Collect garbage and return glibc's free heap pages, so the baseline is low."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the baseline may include freed memory, which is still honest


class PeakRSS:
    """Context manager measuring peak RSS growth, in MiB, during its block.

    Parameters
    ----------
    interval : float, default=0.02
        Sampling period in seconds, used only where the kernel's high-water mark cannot
        be reset.

    Attributes
    ----------
    peak_mb : float
        Peak RSS minus the RSS at entry, in MiB (NaN where RSS cannot be read).

    Examples
    --------
    >>> import numpy as np
    >>> with PeakRSS() as peak:
    ...     block = np.ones(2**24)  # 128 MiB
    >>> peak.peak_mb > 100 or np.isnan(peak.peak_mb)
    True
    """

    def __init__(self, interval=0.02):
        self.interval = interval
        self.peak_mb = float("nan")

    def __enter__(self):
        _release_free_memory()
        self._baseline = current_rss_bytes()
        self._peak = self._baseline
        self._exact = reset_hwm()
        self._stop = threading.Event()
        self._thread = None
        if not self._exact:
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def _sample(self):
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, current_rss_bytes())

    def __exit__(self, *exc_info):
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        peak = max(self._peak, current_rss_bytes())
        if self._exact:
            peak = max(peak, _hwm_bytes())
        self.peak_mb = max(0.0, (peak - self._baseline) / _MIB)
        return False


class PeakGPUMemory:
    """Context manager measuring peak CUDA memory allocated by torch, in MiB.

    ``peak_mb`` stays NaN when CUDA is not initialised: measuring must not be what creates a
    CUDA context, which would add hundreds of MiB of host memory to the run being measured.
    """

    def __init__(self):
        self.peak_mb = float("nan")

    def __enter__(self):
        self._cuda = _initialised_cuda()
        if self._cuda is not None:
            self._cuda.synchronize()
            self._base = self._cuda.memory_allocated()
            self._cuda.reset_peak_memory_stats()
        return self

    def __exit__(self, *exc_info):
        if self._cuda is not None:
            self._cuda.synchronize()
            self.peak_mb = (self._cuda.max_memory_allocated() - self._base) / _MIB
        return False


def _initialised_cuda():
    """Return ``torch.cuda`` if a CUDA context already exists, else None."""
    try:
        import torch
    except ImportError:
        return None
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda
    return None


class Stopwatch:
    """Context manager timing its block: wall seconds and this process's CPU seconds.

    CPU seconds (all threads) next to wall seconds show when other processes competed for
    the cores: then the wall time grows while the CPU time does not.
    """

    def __enter__(self):
        self.seconds = self.cpu_seconds = float("nan")
        self._start, self._cpu_start = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info):
        self.seconds = time.perf_counter() - self._start
        self.cpu_seconds = time.process_time() - self._cpu_start
        return False
