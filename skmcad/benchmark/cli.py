"""Command line of the benchmark: ``python -m skmcad.benchmark`` / ``skmcad-benchmark``."""

import argparse
import json
import shlex
import sys
from pathlib import Path

from . import detectors as detectors_module
from .protocols import DEFAULT_LABELLED_CLASSES, PROTOCOLS

DESCRIPTION = """\
Compare MCADDetector with PyOD baselines under a standard anomaly-detection protocol.
Reports, per detector and per class/data set and seed: AUROC, AUCPR, precision@n, fit
seconds, scoring throughput and peak memory. Writes results.csv, results.md and auroc.png
to --out and prints the AUROC table and a summary.

protocols:
  digits   one-class on scikit-learn's bundled 8x8 digits, split 50/50 (fixed seed);
           no data files needed (default)
  cifar10  one-class on CIFAR-10: train on one class's training images, score the
           whole test split
  mnist    one-class on MNIST, as cifar10
  odds     PyOD's benchmark on ODDS .mat files: random 60/40 splits, not stratified, as
           PyOD's (one per seed, default 10), z-score fitted on the training part; default
           data sets: the 17 of PyOD's benchmark
  adbench  ADBench unsupervised: sets over 10,000 samples cut to 10,000, 70/30
           stratified splits (one per seed, default 3), min-max scaling fitted on the
           training part; default: every .npz file found
  magnetic-tile  localisation on the Magnetic Tile Defect set at 128 px: per seed a split
           of MT_Free, 70 % to fit, 30 % to the test part with every defect image; adds
           pixel AUROC and AUPRO (30 % FPR) for detectors with anomaly_map, rows per
           defect class, and maps.png (test images, masks, maps of MCAD and the best
           baseline)
  image-folder   the same on MVTec AD-style folders (--data-dir PATH, --classes CATEGORY):
           fit on <category>/train/good, score <category>/test/* with the masks of
           <category>/ground_truth/<defect>/<name>_mask.png

unbalanced protocol (--anomaly-ratio R with digits, cifar10 or mnist):
  per normal class, the training set is all of that class's training images plus labelled
  anomalies (y = 1) making up R of it (e.g. 0.01 or 0.05), drawn from --labelled-classes K
  of the other classes (default 5 of 9, drawn per class and seed, recorded in results);
  the whole test split is scored as in one-class, so its anomalies include classes never
  seen labelled. mcad is fitted with the labels (setting="unbalanced"); mcad-one-class is
  the same preset fitted on the same images without labels; xgbod (PyOD's XGBOD), devnet
  (PyOD's DevNet) and hgb (scikit-learn's HistGradientBoostingClassifier, scored by
  predict_proba) are supervised and only run in this protocol; PyOD's one-class baselines
  may be added, they get the images without labels.

unified protocol (--unified with digits, cifar10 or mnist):
  one model for many normal classes: per class named by --classes (default: each in
  turn), every detector is fitted on the training images of all the other classes, without
  class labels, and scores the whole test split with that class as the only anomaly.
"""

EPILOG = """\
Data files are looked for in --data-dir, then $SKMCAD_DATA, then ~/skmcad_data; a folder
holding cifar10/, mnist/, odds/, adbench/ and magnetic_tile/ subfolders works for every
protocol but image-folder, which reads the --data-dir it is given.
Image baselines get flattened float32 pixels in [0, 1]; MCAD gets the same pixels as
images. A detector that raises is recorded as failed and the run goes on.

Every run happens in this process, one after another, with the same thread settings:
fit seconds and scoring throughput are wall-clock (results.csv also has fit CPU seconds),
peak memory is the growth of the process's resident set size during fit + scoring (and
torch's peak CUDA allocation when a GPU is used). Other work on the machine slows the
times; results.md records the load average.

examples:
  python -m skmcad.benchmark --dataset cifar10 --data-dir ~/skmcad_data --classes 0,3 \\
      --detectors mcad,iforest --preset cpu
  python -m skmcad.benchmark --dataset cifar10 --data-dir ~/skmcad_data --anomaly-ratio 0.01
"""


def _positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text}")
    return value


def _anomaly_ratio(text):
    value = float(text)
    if not 0 < value <= 0.5:
        raise argparse.ArgumentTypeError(f"expected a fraction in (0, 0.5], got {text}")
    return value


def _json_dict(text):
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("expected a JSON object such as '{\"n_scales\": 1}'")
    return value


def build_parser():
    """Return the ``argparse`` parser of the benchmark command line."""
    parser = argparse.ArgumentParser(
        prog="python -m skmcad.benchmark", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--dataset", choices=sorted(PROTOCOLS), default="digits", help="protocol (default: digits)")
    add("--data-dir", default=None, help="folder of the data files (see below)")
    add("--download", action="store_true",
        help="fetch CIFAR-10 or MNIST into the data folder when missing (their official "
             "URLs; other data sets have no stable URL: see the user guide's data sets page)")
    add("--classes", default=None, metavar="LIST",
        help="comma list of normal classes (digits, cifar10, mnist), data set names "
             "(odds, adbench) or categories (image-folder); default: all")
    add("--detectors", default=None, metavar="LIST",
        help="comma list from: " + ", ".join(detectors_module.REGISTRY) + " (default: "
             + ",".join(detectors_module.DEFAULT_DETECTORS) + "; with --anomaly-ratio: "
             + ",".join(detectors_module.UNBALANCED_DETECTORS) + "); "
             + ", ".join(detectors_module.SUPERVISED) + " need --anomaly-ratio")
    add("--anomaly-ratio", type=_anomaly_ratio, default=None, metavar="R",
        help="unbalanced protocol (digits, cifar10, mnist): labelled anomalies make up R of "
             "the training set, e.g. 0.01 or 0.05 (default: one-class, no labels)")
    add("--labelled-classes", type=_positive_int, default=None, metavar="K",
        help="unbalanced protocol: the labelled anomalies come from K of the other classes, "
             f"drawn per normal class and seed (default: {DEFAULT_LABELLED_CLASSES})")
    add("--ablation", action="store_true",
        help="also run MCAD's ablations: " + ", ".join(detectors_module.ABLATIONS))
    add("--variants", action="store_true",
        help="also run MCAD's variants: " + ", ".join(
            f"{name} ({', '.join(f'{k}={v!r}' for k, v in over.items())})"
            for name, over in detectors_module.VARIANTS.items()))
    add("--unified", action="store_true",
        help="unified protocol (digits, cifar10, mnist): per class, fit on every other "
             "class, that class the anomaly (see below)")
    add("--preset", choices=("cpu", "gpu"), default="cpu", help="MCAD preset (default: cpu)")
    add("--n-jobs", type=int, default=None, metavar="N",
        help="torch threads of every detector: MCAD's and the feature baselines' n_jobs, and "
             "the count PyOD's torch detectors use (default: 1; -1: every core)")
    add("--mcad-params", type=_json_dict, default={}, metavar="JSON",
        help="MCADDetector keyword arguments overriding the preset, e.g. "
             "'{\"stage1_epochs\": 1}'")
    add("--seeds", type=_positive_int, default=None, metavar="N",
        help="number of seeds: detector seeds, and splits for odds/adbench "
             "(default: 10 for odds, 3 for adbench, else 1)")
    add("--out", default=None, metavar="DIR", help="output folder (default: "
        "benchmark_results/<dataset>, or <dataset>-unbalanced-<R> with --anomaly-ratio)")
    add("--max-train", type=_positive_int, default=None, metavar="N",
        help="quick runs only: fit on at most N random training samples (about N, labelled "
             "anomalies included, with --anomaly-ratio; default: all)")
    add("--max-test", type=_positive_int, default=None, metavar="N",
        help="quick runs only: score at most N test samples, stratified (default: all)")
    return parser


def detector_names(args, parser):
    """Return the detectors to run, checked against the registry, ablations appended.

    Detectors that need labelled anomalies are refused (exit 2) without ``--anomaly-ratio``.
    """
    unbalanced = getattr(args, "anomaly_ratio", None) is not None
    default = (detectors_module.UNBALANCED_DETECTORS if unbalanced
               else detectors_module.DEFAULT_DETECTORS)
    text = ",".join(default) if args.detectors is None else args.detectors
    names = [n.strip() for n in text.split(",") if n.strip()]
    if args.ablation:
        names += [n for n in ("mcad", *detectors_module.ABLATIONS) if n not in names]
    if getattr(args, "variants", False):
        names += [n for n in ("mcad", *detectors_module.VARIANTS) if n not in names]
    unknown = [n for n in names if n not in detectors_module.REGISTRY]
    if unknown or not names:
        parser.error(f"unknown detectors {unknown}; choose from "
                     f"{', '.join(detectors_module.REGISTRY)}")
    supervised = [n for n in names if detectors_module.REGISTRY[n].labels == "required"]
    if supervised and not unbalanced:
        parser.error(f"{', '.join(supervised)} need labelled anomalies: run them in the "
                     "unbalanced protocol, e.g. --anomaly-ratio 0.01 (digits, cifar10, mnist)")
    return _installed(list(dict.fromkeys(names)), args.detectors is None, parser)  # no repeats


def _installed(names, defaults, parser):
    """``names`` without the detectors whose optional packages are absent: a default one is
    left out with a note, one the user named is refused (exit 2), both naming the install."""
    missing = {n: detectors_module.REGISTRY[n].missing() for n in names}
    missing = {n: pips for n, pips in missing.items() if pips}
    for name, pips in missing.items():
        hint = f"{name} needs {', '.join(pips)}: pip install {' '.join(pips)}"
        if not defaults:
            parser.error(hint + ' (or pip install -e ".[benchmark]")')
        print(f"note: {hint} (or pip install -e \".[benchmark]\"); left out of this run",
              file=sys.stderr)
    return [n for n in names if n not in missing]


def check_unbalanced_options(args, parser):
    """Refuse (exit 2) unbalanced and unified options where they do not apply."""
    if args.unified and not PROTOCOLS[args.dataset].supports_unified:
        supported = [n for n, p in PROTOCOLS.items() if p.supports_unified]
        parser.error(f"--unified: no unified protocol for {args.dataset}; it is for "
                     f"{', '.join(supported)}")
    if args.unified and args.anomaly_ratio is not None:
        parser.error("--unified and --anomaly-ratio are separate protocols: choose one")
    if args.anomaly_ratio is None:
        if args.labelled_classes is not None:
            parser.error("--labelled-classes needs --anomaly-ratio")
    elif not PROTOCOLS[args.dataset].supports_unbalanced:
        supported = [n for n, p in PROTOCOLS.items() if p.supports_unbalanced]
        parser.error(f"--anomaly-ratio: no unbalanced protocol for {args.dataset}; it is for "
                     f"{', '.join(supported)}")


def _set_torch_threads(n_jobs):
    # PyOD's torch detectors use the process-wide count; MCAD and the feature baselines
    # set the same count for each of their calls.
    import torch

    from skmcad.threads import n_threads

    torch.set_num_threads(n_threads(n_jobs))


def _progress(total):
    from tqdm.auto import tqdm

    # A bar only on a terminal: in logs and pipes it would be noise.
    return tqdm(total=total, unit="run", disable=not sys.stderr.isatty())


def _log_run(record, index, total, bar):
    if not bar.disable:
        bar.set_postfix_str(f"{record['detector']} {record['subset']}", refresh=False)
        return
    detail = (f"AUROC {record['auroc']:.3f} fit {record['fit_seconds']:.1f}s"
              if record["status"] == "ok" else f"failed: {record['error'][:120]}")
    print(f"[{index}/{total}] {record['detector']} {record['subset']} seed {record['seed']}: "
          f"{detail}", file=sys.stderr, flush=True)


def run_benchmark(protocol, subsets, seeds, names, context, out_dir):
    """Run every detector on every task; rewrite results.csv after each run; return a frame."""
    # pandas, PyOD, torch and the runner load here, not at import: --help stays fast
    import pandas as pd
    import torch

    from . import report
    from .runner import run_rows, warm_up

    if torch.cuda.is_available():
        torch.cuda.init()  # created once here, not inside the first detector's measurement
    records, total, runs = [], len(subsets) * len(seeds) * len(names), 0
    with _progress(total) as bar:
        for i, task in enumerate(protocol.tasks(subsets, seeds)):
            if i == 0:
                warm_up(names, task, context)
            # the first task's maps of a few test images make the picture of maps.png
            shown = report.example_images(task) if i == 0 else None
            maps = {}
            for name in names:
                rows, maps[name] = run_rows(name, task, protocol.name, context, shown)
                records += rows
                runs += 1
                # Written after every run, so an interrupted benchmark keeps what it did.
                report.write_csv(pd.DataFrame(records), out_dir / "results.csv")
                _log_run(rows[0], runs, total, bar)
                bar.update()
            if shown is not None:
                report.plot_map_grid(task, shown, maps, pd.DataFrame(records),
                                     out_dir / "maps.png")
    return pd.DataFrame(records)


def _prepare(args, parser):
    """Return ``(protocol, subsets)`` with the data loaded, or exit with a clear message."""
    protocol = PROTOCOLS[args.dataset](
        args.data_dir, args.max_train, args.max_test, anomaly_ratio=args.anomaly_ratio,
        n_labelled_classes=args.labelled_classes or DEFAULT_LABELLED_CLASSES,
        download=args.download, unified=args.unified,
    )
    try:
        subsets = (protocol.parse_subsets(args.classes) if args.classes
                   else protocol.default_subsets())
        if not subsets:
            raise ValueError(f"no {args.dataset} data set found")
        protocol.load(subsets)
    except (OSError, ValueError) as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    return protocol, subsets


def _title_and_notes(args):
    """Return the title of results.md and the chart, and the notes under it."""
    title = f"skmcad benchmark: {args.dataset}"
    if args.unified:
        return title + ", unified", (
            "Unified protocol: one model for many normal classes. Per class (subset) named "
            "in the tables, each detector is fitted on the training images of every other "
            "class, without class labels, and scores the whole test split with that class "
            "as the only anomaly.",)
    if args.anomaly_ratio is None:
        return title, ()
    n_labelled = args.labelled_classes or DEFAULT_LABELLED_CLASSES
    title += f", unbalanced, anomaly ratio {args.anomaly_ratio:g}"
    note = (
        f"Unbalanced protocol: anomaly ratio {args.anomaly_ratio:g}. Per normal class (subset) "
        f"the training set is that class's training images plus labelled anomalies making up "
        f"{args.anomaly_ratio * 100:g} % of it, drawn from {n_labelled} of the other classes (listed "
        "below, per class and seed); the whole test split is scored, every other class "
        "anomalous, including the classes never seen labelled. Detectors that use labels "
        "(mcad with setting=\"unbalanced\", xgbod, devnet, hgb) get them; the others "
        "(mcad-one-class, PyOD's one-class detectors) are fitted on the same images without "
        "labels, the labelled anomalies then being contamination."
    )
    return title, (note,)


def _finish(results, args, out_dir, command):
    from . import report

    title, notes = _title_and_notes(args)
    text = report.render_markdown(results, command, report.machine_info(), title, notes)
    (out_dir / "results.md").write_text(text)
    report.plot_auroc(results, out_dir / "auroc.png", title + " (AUROC)")
    print(report.markdown_table(*report.metric_table(results, "auroc")))
    print()
    print(report.markdown_table(*report.summary_table(results)))
    print(f"\nresults written to {out_dir}/ (results.csv, results.md, auroc.png)")


def main(argv=None):
    """Run the benchmark command line.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
        0 once the benchmark has run (failed detectors included, they are in the results).
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    check_unbalanced_options(args, parser)
    names = detector_names(args, parser)
    protocol, subsets = _prepare(args, parser)
    default_out = args.dataset if args.anomaly_ratio is None else (
        f"{args.dataset}-unbalanced-{args.anomaly_ratio:g}")
    default_out += "-unified" if args.unified else ""
    out_dir = Path(args.out or Path("benchmark_results") / default_out)
    out_dir.mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds or protocol.default_seeds))
    # localisation protocols fix the image size: every backbone reads it unresized
    size = getattr(protocol, "input_size", None)
    mcad_params = dict(args.mcad_params) if size is None else {"input_size": size,
                                                               **args.mcad_params}
    context = detectors_module.BuildContext(
        n_features=0, random_state=0, kind=protocol.kind, preset=args.preset,
        mcad_params=mcad_params, anomaly_ratio=args.anomaly_ratio, n_jobs=args.n_jobs,
    )
    _set_torch_threads(args.n_jobs)
    results = run_benchmark(protocol, subsets, seeds, names, context, out_dir)
    _finish(results, args, out_dir, "python -m skmcad.benchmark " + shlex.join(argv))
    return 0
