"""Stage-2 scorers, chosen by ``MCADDetector(scorer=...)``; see :mod:`skmcad.scorers.base`
for what each offers."""

from .base import Scorer
from .conv import ConvScorer
from .gaussian import GaussianScorer
from .hybrid import HybridScorer
from .learned import DeviationScorer

SCORERS = ("learned", "gaussian", "hybrid", "conv")


def build_scorer(name, network, discriminative=False):
    """The scorer ``name`` for the scales of ``network``.

    ``discriminative`` (the unbalanced setting) gives the "learned" and "conv" scorers a
    linear head on pooled descriptors; the "hybrid" one has dense heads whatever the setting.
    """
    normalise = network.distance == "cosine"
    prior = network.scale_prior
    if name == "learned":
        return DeviationScorer(network.channels, discriminative=discriminative,
                               scale_prior=prior)
    if name == "gaussian":
        return GaussianScorer(network.channels, normalise=normalise)
    if name == "hybrid":
        return HybridScorer(network.channels, scale_prior=prior, normalise=normalise)
    if name == "conv":
        return ConvScorer(network.channels, scale_prior=prior, discriminative=discriminative)
    raise ValueError(f"scorer must be one of {SCORERS}; got {name!r}.")


__all__ = ["Scorer", "ConvScorer", "DeviationScorer", "GaussianScorer", "HybridScorer", "SCORERS",
           "build_scorer"]
