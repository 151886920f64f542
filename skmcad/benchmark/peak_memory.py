"""Peak memory of scoring and fitting: is it bounded by ``batch_size``, not by ``n``?

Run it as ``python -m skmcad.benchmark.peak_memory`` (a few minutes on 2 cores). It fits a
small tabular and a small image detector, saves them, then scores, each case in a fresh
subprocess that loads the saved detector:

- tabular rows (float64, in memory), and
- 32x32x3 uint8 images stored in a ``np.memmap`` in a temporary folder (written in chunks,
  never built in memory),

for every ``n`` in ``--sizes`` and every ``--batch-sizes``. For each it prints the input size
and the peak resident memory added by ``decision_function`` over the process's resident memory
just before it (model loaded, input ready):

- ``anon``: anonymous memory (heap, tensors, numpy arrays), sampled every millisecond from
  ``/proc/self/status`` (``RssAnon``): what scoring allocates.
- ``total``: ``VmHWM`` (reset before scoring through ``/proc/self/clear_refs``), which also
  counts the memmap's file pages read so far; those are page cache that the kernel drops when
  memory is needed, so they grow with ``n`` without being held by the process.

Last, fits on uint8 images read from the memmap, at two sizes: the growth of their peak
anonymous memory per MB of training images as float32 tells how many float32-sized copies of
the data fit holds at once (a float64 copy would count 2); the fixed part (networks,
activations of a training batch) cancels out.

Linux only (``/proc``). ``--threads`` sets torch's thread count in every process (default 1:
on shared cores, tiny networks run faster on one thread).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from .measure import reset_hwm

IMAGE_SHAPE = (32, 32, 3)
N_FEATURES = 32
DETECTOR_PARAMS = dict(memory_size=8, n_scales=2, width=2, stage1_epochs=1, stage2_epochs=1,
                       batch_size=128, random_state=0)
MB = 1024 * 1024


# -- measuring --------------------------------------------------------------------------------

def _status():
    """Resident memory fields of /proc/self/status, in bytes."""
    values = {}
    with open("/proc/self/status") as file:
        for line in file:
            key, _, rest = line.partition(":")
            if key in ("VmHWM", "VmRSS", "RssAnon", "RssFile"):
                values[key] = int(rest.split()[0]) * 1024
    return values


class PeakSampler:
    """Samples ``RssAnon`` in a background thread and keeps the maximum."""

    def __init__(self, interval=0.001):
        self.interval, self.peak = interval, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _status()["RssAnon"])
            time.sleep(self.interval)

    def __enter__(self):
        self.peak = _status()["RssAnon"]
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _status()["RssAnon"])


def _measure(function):
    """Run ``function`` and return its result and the peak memory it added."""
    import gc

    gc.collect()
    before = _status()
    reset = reset_hwm()
    start = time.perf_counter()
    with PeakSampler() as sampler:
        result = function()
    seconds = time.perf_counter() - start
    after = _status()
    return result, {
        "anon_increase_mb": (sampler.peak - before["RssAnon"]) / MB,
        "total_increase_mb": ((after["VmHWM"] - before["VmRSS"]) / MB) if reset else None,
        "rss_before_mb": before["VmRSS"] / MB,
        "seconds": seconds,
    }


# -- the child processes ----------------------------------------------------------------------

def _open_images(path, n_total, n):
    return np.memmap(path, dtype=np.uint8, mode="r", shape=(n_total,) + IMAGE_SHAPE)[:n]


def _child(spec):
    import torch

    torch.set_num_threads(spec["threads"])
    from skmcad import MCADDetector
    from skmcad.persistence import load_detector

    if spec["task"] == "fit":
        X = _open_images(spec["images"], spec["n_total"], spec["n"])
        detector = MCADDetector(**{**DETECTOR_PARAMS, "batch_size": spec["batch_size"]})
        _, result = _measure(lambda: detector.fit(X))
        return result

    detector = load_detector(spec["detector"]).set_params(batch_size=spec["batch_size"])
    if spec["kind"] == "tabular":
        X = np.random.default_rng(1).standard_normal((spec["n"], N_FEATURES))
    else:
        X = _open_images(spec["images"], spec["n_total"], spec["n"])
    scores, result = _measure(lambda: detector.decision_function(X))
    assert scores.shape == (spec["n"],) and np.isfinite(scores).all()
    result["input_mb"] = X.nbytes / MB
    return result


def _run_child(spec):
    done = subprocess.run(
        [sys.executable, "-m", "skmcad.benchmark.peak_memory", "--child", json.dumps(spec)],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"measuring {spec} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the parent -------------------------------------------------------------------------------

def _write_images(path, n, chunk=10_000, seed=0):
    """Random uint8 images written to a memmap chunk by chunk, never whole in memory."""
    rng = np.random.default_rng(seed)
    images = np.memmap(path, dtype=np.uint8, mode="w+", shape=(n,) + IMAGE_SHAPE)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        images[start:stop] = rng.integers(0, 256, size=(stop - start,) + IMAGE_SHAPE,
                                          dtype=np.uint8)
    images.flush()
    del images


def _fit_detectors(folder, threads):
    import torch

    from skmcad import MCADDetector
    from skmcad.persistence import save_detector

    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    paths = {"tabular": os.path.join(folder, "tabular.pt"),
             "images": os.path.join(folder, "images.pt")}
    tabular = MCADDetector(**DETECTOR_PARAMS).fit(rng.standard_normal((2000, N_FEATURES)))
    save_detector(tabular, paths["tabular"])
    images = rng.integers(0, 256, size=(512,) + IMAGE_SHAPE, dtype=np.uint8)
    save_detector(MCADDetector(**DETECTOR_PARAMS).fit(images), paths["images"])
    return paths


def _format_mb(value):
    return "n/a" if value is None else f"{value:.1f}"


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m skmcad.benchmark.peak_memory",
        description="Peak memory of MCADDetector scoring (tabular rows and memmapped uint8 "
                    "images) and fitting; each case in a fresh process.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    parser.add_argument("--fit-sizes", type=int, nargs=2, default=[4_000, 16_000],
                        help="uint8 images in the two fit measurements (default 4000 16000)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(json.loads(args.child))))
        return 0

    n_total = max(args.sizes + args.fit_sizes)
    with tempfile.TemporaryDirectory(prefix="skmcad-peak-memory-") as folder:
        images = os.path.join(folder, "images.uint8")
        _write_images(images, n_total)
        detectors = _fit_detectors(folder, args.threads)

        print(f"Scoring peak memory (torch threads: {args.threads}); MB = 2**20 bytes.")
        print("anon = peak RssAnon increase (sampled); total = VmHWM increase, which also "
              "counts memmap file pages (page cache).")
        header = (f"{'data':<28} {'n':>8} {'batch_size':>10} {'input MB':>9} "
                  f"{'anon MB':>8} {'total MB':>9} {'seconds':>8}")
        print(header)
        print("-" * len(header))
        for kind, label in [("tabular", f"tabular float64 ({N_FEATURES} feat.)"),
                            ("images", "images 32x32x3 uint8 memmap")]:
            for n in args.sizes:
                for batch_size in args.batch_sizes:
                    result = _run_child(dict(
                        task="score", kind=kind, detector=detectors[kind], images=images,
                        n_total=n_total, n=n, batch_size=batch_size, threads=args.threads))
                    print(f"{label:<28} {n:>8} {batch_size:>10} {result['input_mb']:>9.1f} "
                          f"{_format_mb(result['anon_increase_mb']):>8} "
                          f"{_format_mb(result['total_increase_mb']):>9} "
                          f"{result['seconds']:>8.1f}", flush=True)

        print()
        print("Fit on uint8 images 32x32x3 read from a memmap (stage1_epochs=1, "
              "stage2_epochs=1, batch_size=128):")
        print(f"{'n':>8} {'uint8 MB':>9} {'float32 MB':>11} {'float64 MB':>11} "
              f"{'peak anon MB':>13} {'seconds':>8}")
        peaks, sizes = [], []
        for n_fit in args.fit_sizes:
            result = _run_child(dict(task="fit", images=images, n_total=n_total, n=n_fit,
                                     batch_size=128, threads=args.threads))
            values = n_fit * int(np.prod(IMAGE_SHAPE))
            peaks.append(result["anon_increase_mb"])
            sizes.append(values * 4 / MB)
            print(f"{n_fit:>8} {values / MB:>9.1f} {values * 4 / MB:>11.1f} "
                  f"{values * 8 / MB:>11.1f} {result['anon_increase_mb']:>13.1f} "
                  f"{result['seconds']:>8.1f}", flush=True)
        slope = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
        print(f"Peak grows by {slope:.2f} MB per MB of float32 training data: fit holds about "
              f"{slope:.1f} float32-sized copies of the data at its peak (a float64 copy "
              f"would add 2).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
