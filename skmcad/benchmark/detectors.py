"""The detectors a benchmark run compares, each built fresh for every run.

``REGISTRY`` maps a detector name to a :class:`DetectorSpec`; tests and users can add or
replace entries. Baselines are PyOD's detectors with fixed settings (PyOD's defaults unless
noted) and they get flattened pixels; MCAD gets images in their natural layout. Every
detector gets the same values, float32 pixels scaled to [0, 1] or z-scored table rows.

In the unbalanced protocol the training data has labels (1 = labelled anomaly): detectors
whose spec has ``labels="used"`` or ``"required"`` are fitted with ``fit(X, y)`` (``mcad``
then in its ``setting="unbalanced"``), the others with ``fit(X)``, the labelled anomalies
being unlabelled contamination for them. ``"required"`` detectors (the supervised baselines
``SUPERVISED``) only run in the unbalanced protocol.
"""

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

BASELINES = ("iforest", "ocsvm", "knn", "ecod", "autoencoder", "deepsvdd")
DEFAULT_DETECTORS = ("mcad",) + BASELINES
SUPERVISED = ("xgbod", "devnet", "hgb")
# Default comparison of the unbalanced protocol: MCAD with the labels, the
# same MCAD without them, and the supervised baselines on the same data.
UNBALANCED_DETECTORS = ("mcad", "mcad-one-class") + SUPERVISED
LABEL_USES = ("ignored", "used", "required")

# Each ablation switches one part of the method. On images the default reads kNN banks
# (no learned memory), so there "mcad-no-memory" is the default and "mcad-learned-memory" the
# paper's memory; on tables the reverse. The last two concern the pretrained backbone; on
# tables (nothing to adapt, no image scale) they are the default.
ABLATIONS = {
    "mcad-no-memory": {"use_memory": False},
    "mcad-learned-memory": {"use_memory": True},
    "mcad-untrained-memory": {"use_memory": True, "stage1_epochs": 0},
    "mcad-one-scale": {"n_scales": 1},
    "mcad-no-stage2": {"stage2_epochs": 0},
    "mcad-frozen-backbone": {"adapt_steps": 0},
    "mcad-no-image-scale": {"image_scale": False},
}
# Each variant swaps one part for a related system's (MCADDetector's memory and scorer).
VARIANTS = {
    "mcad-grid": {"memory": "grid"},
    "mcad-gaussian": {"scorer": "gaussian"},
    "mcad-hybrid": {"scorer": "hybrid"},
    "mcad-conv": {"scorer": "conv"},
}


@dataclass(frozen=True)
class BuildContext:
    """What a detector factory may depend on.

    Parameters
    ----------
    n_features : int
        Number of features of the flattened input.
    random_state : int
        Seed of this run.
    kind : {"image", "tabular"}
        Kind of input of the protocol.
    preset : {"cpu", "gpu"}
        MCAD preset.
    mcad_params : dict
        MCADDetector keyword arguments overriding the preset.
    anomaly_ratio : float or None, default=None
        Set in the unbalanced protocol (fraction of labelled anomalies in the training data).
    n_jobs : int or None, default=None
        Torch threads of MCAD and of the frozen-backbone baselines (their ``n_jobs``).
    image_side : int or None, default=None
        Shorter side of the protocol's images, in pixels (None for tables): with MCAD's
        ``input_size="auto"``, the frozen-backbone baselines read the images at the size
        MCAD resolves from it.
    """

    n_features: int
    random_state: int
    kind: str = "tabular"
    preset: str = "cpu"
    mcad_params: dict = field(default_factory=dict)
    anomaly_ratio: Optional[float] = None
    n_jobs: Optional[int] = None
    image_side: Optional[int] = None


@dataclass(frozen=True)
class DetectorSpec:
    """How to build one detector and which input layout it takes.

    Parameters
    ----------
    build : callable
        ``build(context: BuildContext) -> detector`` with PyOD's ``fit`` and
        ``decision_function`` (higher = more anomalous).
    flat_input : bool, default=True
        Whether images are given as flattened rows ``(n, H*W*C)`` instead of their
        natural layout.
    warm_up : bool, default=True
        Whether to fit it once on a few samples before the measured runs, so that one-time
        lazy initialisation (imports, caches) is not charged to its first run. Off for
        detectors whose fit costs a fixed number of epochs whatever the data size.
    labels : {"ignored", "used", "required"}, default="ignored"
        What the detector does with training labels: ``"ignored"``: always ``fit(X)``;
        ``"used"``: ``fit(X, y)`` when the protocol has labels (unbalanced), else ``fit(X)``;
        ``"required"``: ``fit(X, y)``, and it runs only in the unbalanced protocol.
    requires : tuple of (module, pip requirement), default=()
        Optional packages the detector needs beyond the package's own dependencies.
    """

    build: Callable
    flat_input: bool = True
    warm_up: bool = True
    labels: str = "ignored"
    requires: tuple = ()

    def missing(self):
        """The pip requirements of the packages this detector needs and that are absent."""
        import importlib.util

        return [pip for module, pip in self.requires if importlib.util.find_spec(module) is None]

    def __post_init__(self):
        if self.labels not in LABEL_USES:
            raise ValueError(f"labels must be one of {LABEL_USES}, got {self.labels!r}")


def _iforest(ctx):
    from pyod.models.iforest import IForest

    return IForest(n_estimators=100, random_state=ctx.random_state)


def _ocsvm(ctx):
    from pyod.models.ocsvm import OCSVM

    return OCSVM(kernel="rbf", nu=0.5, gamma="auto")


def _knn(ctx):
    from pyod.models.knn import KNN

    return KNN(n_neighbors=5, method="largest")


def _ecod(ctx):
    from pyod.models.ecod import ECOD

    return ECOD()


def _autoencoder(ctx):
    from pyod.models.auto_encoder import AutoEncoder

    # PyOD's default network and epochs; verbose off so only our progress bar shows.
    return AutoEncoder(
        hidden_neuron_list=[64, 32], epoch_num=10, batch_size=32,
        random_state=ctx.random_state, verbose=0,
    )


def _deepsvdd(ctx):
    from pyod.models.deep_svdd import DeepSVDD

    # 20 epochs instead of PyOD's 100: seconds on digits, under a minute on CIFAR-10.
    return DeepSVDD(
        n_features=ctx.n_features, hidden_neurons=[64, 32], epochs=20, batch_size=32,
        random_state=ctx.random_state, verbose=0,
    )


def mcad_params(ctx, overrides=None, one_class=False):
    """Return MCADDetector keyword arguments: preset, then user's, then setting, ``overrides``.

    ``setting`` is ``"one-class"`` when ``one_class``, else ``"unbalanced"`` in the unbalanced
    protocol (``ctx.anomaly_ratio`` set), else left to the preset and the user.
    Ablation overrides come last so that a user's parameters cannot undo an ablation.
    """
    from skmcad.presets import preset_params

    params = dict(preset_params(ctx.preset, ctx.kind), n_jobs=ctx.n_jobs)
    _update_scales(params, ctx.mcad_params)
    if one_class:
        params["setting"] = "one-class"
    elif ctx.anomaly_ratio is not None:
        params["setting"] = "unbalanced"
    _update_scales(params, overrides or {})
    params["random_state"] = ctx.random_state
    return params


def _update_scales(params, update):
    """``params.update(update)``, where ``n_scales`` and ``stages`` name the same thing: new
    ``stages`` replace the old ``n_scales``, and a new ``n_scales`` keeps the deepest of the
    old ``stages`` (the one-scale ablation of a run with ``stages`` reads its deepest);
    another backbone drops the pretrained backbone's ``stages``, ``neighbourhood``,
    ``adapt_steps`` and ``image_scale``."""
    from skmcad.presets import PRETRAINED_BACKBONES

    if update.get("backbone", "auto") not in (*PRETRAINED_BACKBONES, "auto"):
        for name in ("stages", "neighbourhood", "adapt_steps", "image_scale"):
            params.pop(name, None)
    if "stages" in update:
        params.pop("n_scales", None)
    elif "n_scales" in update and isinstance(params.get("stages"), (tuple, list)):
        params["stages"] = tuple(params["stages"])[-int(update["n_scales"]):]
    params.update(update)


def _mcad_factory(overrides=None, one_class=False):
    def build(ctx):
        from skmcad._detector import MCADDetector

        return MCADDetector(**mcad_params(ctx, overrides, one_class))

    return build


def _baseline_input_size(ctx, mcad):
    """Side images are resized to for the frozen-backbone baselines: MCAD's in the same run
    (``mcad``, its parameters; the images' own size when MCAD keeps it; "auto"'s small size
    when that is unknown)."""
    from skmcad.presets import auto_input_size

    size = mcad.get("input_size", "auto")
    if size == "auto":
        return auto_input_size(ctx.image_side)
    return (ctx.image_side or auto_input_size(None)) if size is None else size


def _baseline_backbone(mcad):
    """The pretrained backbone of the frozen-backbone baselines: MCAD's in the same run
    (``mcad``, its parameters; the image default when MCAD trains another)."""
    from skmcad.presets import AUTO_BACKBONE, PRETRAINED_BACKBONES

    backbone = mcad.get("backbone", "auto")
    return backbone if backbone in PRETRAINED_BACKBONES else AUTO_BACKBONE["image"]


def _baseline_params(ctx):
    mcad = mcad_params(ctx)
    return dict(backbone=_baseline_backbone(mcad), input_size=_baseline_input_size(ctx, mcad),
                n_jobs=ctx.n_jobs, random_state=ctx.random_state)


def _knn_features(ctx):
    from skmcad.baselines import FeatureKNN

    return FeatureKNN(**_baseline_params(ctx))


def _patchcore(ctx):
    from skmcad.baselines import PatchCore

    return PatchCore(**_baseline_params(ctx))


def _padim(ctx):
    from skmcad.baselines import PaDiM

    return PaDiM(**_baseline_params(ctx))


@contextlib.contextmanager
def _quiet(*messages):
    """Silence stdout and the warnings whose message matches one of ``messages``."""
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        for message in messages:
            warnings.filterwarnings("ignore", message=message)
        yield


# PyOD's base class warns when y is given to fit, which these supervised detectors need.
_Y_GIVEN = "y should not be presented"


def _xgbod(ctx):
    from pyod.models.xgbod import XGBOD

    class QuietXGBOD(XGBOD):
        """PyOD's XGBOD, without the warnings of every fit (PyOD passes ``silent``, which
        XGBoost no longer knows, and warns when given y)."""

        def fit(self, X, y):
            with _quiet(_Y_GIVEN, r'(?s).*"silent"'):
                return super().fit(X, y)

    # PyOD's default list holds 41 unsupervised detectors, 11 of them OCSVMs that take hours
    # on CIFAR-size inputs; this list keeps its fast families (KNN, HBOS, IForest) with
    # several settings, so XGBOD runs in minutes on image benchmarks.
    from pyod.models.hbos import HBOS
    from pyod.models.iforest import IForest
    from pyod.models.knn import KNN

    estimators = ([KNN(n_neighbors=k) for k in (1, 5, 10, 20)]
                  + [HBOS(n_bins=b) for b in (10, 20, 50)]
                  + [IForest(n_estimators=n, random_state=ctx.random_state) for n in (50, 100)])
    flags = [True] * 4 + [False] * 5
    return QuietXGBOD(estimator_list=estimators, standardization_flag_list=flags,
                      random_state=ctx.random_state)


def _devnet(ctx):
    import numpy as np
    import torch
    from pyod.models.devnet import DevNet, deviation_loss, deviation_network
    from sklearn.utils import check_array

    class BalancedDevNet(DevNet):
        """PyOD's DevNet (network, optimiser, deviation loss, parameters), trained as in the
        DevNet paper.

        PyOD 3.6.7's ``DevNet.fit`` calls ``deviation_loss(outputs, labels)`` with its two
        arguments swapped (and a ``(batch, 1)`` output against ``(batch,)`` labels, so the
        loss is taken over a batch x batch matrix): it drives every score to minus infinity
        and can rank the labelled anomalies below the normal data. Its batches are plain
        shuffles (about 1 % anomalies at a 1 % ratio), it ignores ``random_seed`` and
        ``device`` and prints every epoch. Here ``fit`` does what the paper (and PyOD's own
        parameters ``epochs``, ``nb_batch``, ``batch_size``) describe: ``epochs`` x
        ``nb_batch`` batches of ``batch_size`` samples, half normal and half labelled
        anomalies drawn with replacement, loss ``deviation_loss(labels, scores)``; torch's
        generator is seeded with ``random_seed`` inside ``torch.random.fork_rng`` (the global
        state is given back), and the network runs on ``device``.
        """

        def fit(self, X, y):
            X = check_array(X, dtype=np.float32)
            y = np.asarray(y).ravel()
            anomalies, normals = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
            if len(X) != len(y) or not len(anomalies) or not len(normals):
                raise ValueError("DevNet needs labels for every sample, with some labelled "
                                 "anomalies (1) and some normal samples (0)")
            rng = np.random.RandomState(self.random_seed)
            labels = torch.from_numpy(np.arange(self.batch_size) % 2).float().to(self.device)
            with torch.random.fork_rng(devices=[]):
                torch.default_generator.manual_seed(self.random_seed)
                self.model, optimizer = deviation_network(X.shape[1], self.network_depth)
                self.model.to(self.device).train()
                for _ in range(self.epochs * self.nb_batch):
                    rows = np.where(np.arange(self.batch_size) % 2 == 1,
                                    rng.choice(anomalies, self.batch_size),
                                    rng.choice(normals, self.batch_size))
                    batch = torch.from_numpy(X[rows]).to(self.device)
                    optimizer.zero_grad()
                    loss = deviation_loss(labels, self.model(batch).view(-1))
                    loss.backward()
                    optimizer.step()
            self.decision_scores_ = self.decision_function(X)
            self._process_decision_scores()
            return self

        def decision_function(self, X):
            X = check_array(X, dtype=np.float32)
            self.model.eval()
            with torch.no_grad():
                return np.concatenate([
                    self.model(torch.from_numpy(X[i:i + self.batch_size]).to(self.device))
                    .view(-1).cpu().numpy() for i in range(0, len(X), self.batch_size)
                ]).astype(np.float64)

    # PyOD's network (network_depth=2: one hidden layer of 1000 units), optimiser and
    # batches (nb_batch=20 of 512 per epoch), 20 epochs instead of 50 for time: 400 steps,
    # about a minute on 2 cores for CIFAR-10's 3072 pixels.
    return BalancedDevNet(network_depth=2, epochs=20, nb_batch=20, batch_size=512,
                          random_seed=ctx.random_state)


def _hgb(ctx):
    from sklearn.ensemble import HistGradientBoostingClassifier

    class HGBScores(HistGradientBoostingClassifier):
        """scikit-learn's HistGradientBoostingClassifier scored by ``predict_proba[:, 1]``."""

        def decision_function(self, X):
            return self.predict_proba(X)[:, 1]

    return HGBScores(random_state=ctx.random_state)


REGISTRY = {
    "iforest": DetectorSpec(_iforest),
    "ocsvm": DetectorSpec(_ocsvm),
    "knn": DetectorSpec(_knn),
    "ecod": DetectorSpec(_ecod),
    "autoencoder": DetectorSpec(_autoencoder),
    "deepsvdd": DetectorSpec(_deepsvdd),
    "mcad": DetectorSpec(_mcad_factory(), flat_input=False, warm_up=False, labels="used"),
    # The same preset always in the one-class setting: in the unbalanced protocol it is fit
    # on the same images without their labels.
    "mcad-one-class": DetectorSpec(_mcad_factory(one_class=True), flat_input=False,
                                   warm_up=False),
    "xgbod": DetectorSpec(_xgbod, labels="required", requires=(("xgboost", "xgboost-cpu"),)),
    "devnet": DetectorSpec(_devnet, labels="required"),
    "hgb": DetectorSpec(_hgb, labels="required"),
    # DN2, PatchCore and PaDiM on MCAD's frozen ImageNet backbone, at MCAD's input size: what
    # MCAD's training adds over its features (skmcad.baselines).
    "knn-features": DetectorSpec(_knn_features, flat_input=False),
    "patchcore": DetectorSpec(_patchcore, flat_input=False),
    "padim": DetectorSpec(_padim, flat_input=False),
}
REGISTRY.update({
    name: DetectorSpec(_mcad_factory(over), flat_input=False, warm_up=False, labels="used")
    for name, over in {**ABLATIONS, **VARIANTS}.items()
})


def describe(detector):
    """Return ``ClassName(param=value, ...)`` from ``get_params(deep=False)``.

    Examples
    --------
    >>> from pyod.models.ecod import ECOD
    >>> describe(ECOD())
    'ECOD(contamination=0.1, n_jobs=1)'
    """
    try:
        params = detector.get_params(deep=False)
    except Exception:  # a third-party detector without get_params
        return type(detector).__name__
    args = ", ".join(f"{key}={value!r}" for key, value in sorted(params.items()))
    return f"{type(detector).__name__}({args})"
