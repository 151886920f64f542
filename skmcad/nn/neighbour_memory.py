"""A kNN bank of training features, read like a memory."""

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from .coreset import greedy_coreset
from .positions import positions
from .pretrained_encoder import native_bfloat16

# Banks of at least this many vectors, read by cosine on a device with native bfloat16, are
# searched in two passes: bfloat16 similarities pick each query's PRESELECT - 1 + k best
# candidates, float32 ones choose the k-th nearest among them. The bfloat16 product runs at
# about twice float32's speed on such CPUs (this search is about half of a CIFAR-10 image's
# FLOPs at 160 px); its rounding (about 0.004 of a cosine) can reorder near neighbours, which
# the float32 pass puts back, so a read differs from the one-pass search only where the true
# neighbour is not among the candidates.
TWO_PASS_MIN_BANK = 4096
PRESELECT = 8
# The most training vectors a bank keeps, by default (the detector's ``bank_size="auto"``):
# a random sample of that many for banks read by their k-th nearest vector (a density), a
# greedy coreset of CORESET_BANK_SIZE for those read by the nearest. On Magnetic Tile defects
# (64 positions an image) a random 4,096 lost 0.058 of image AUROC where 16,384 scored as a
# bank of every position, and a greedy 4,096 scored as 16,384; on CIFAR-10 at 160 px the
# greedy 4,096 scored as the random 16,384 and 1.4 times as fast (docs/benchmarks.md,
# "Greedy coreset banks").
BANK_SIZE = 16384
CORESET_BANK_SIZE = 4096
# A greedy coreset bank is drawn from a random sample of at most this many times its size of
# the training positions: each of its steps passes over the whole sample, so the sample
# bounds the fit time (about 13 s a fit for two banks of 4,096 on CIFAR-10 at 160 px,
# docs/benchmarks.md, "Greedy coreset banks").
CORESET_POOL = 8
# Queries are searched in chunks whose (queries, bank) similarity matrix holds about this many
# elements (8 MiB in bfloat16; 256 queries against a bank of 16,384): with banks of 16,384 the
# default scored CIFAR-10 at 160 px 1.04-1.07 times as fast as with chunks of 4,096 queries
# (docs/benchmarks.md, "Greedy coreset banks").
CHUNK_ELEMENTS = 2 ** 22


class NearestNeighbourMemory(nn.Module):
    """The no-memory ablation: every position reads its nearest training feature.

    Nothing is learned: after stage 1, :meth:`initialize_from` stores feature vectors of
    the training data (at most ``bank_size`` positions, drawn at random) and a read returns
    the stored vector nearest to each query, so the deviation is a 1-nearest-neighbour
    distance. It is what a user would run instead of a learned memory: a kNN search on the
    same features.

    With ``n_neighbours=k`` a read returns the k-th nearest stored vector instead, so a
    "euclidean" deviation is the squared distance to the k-th nearest training vector (over
    ``C``): PyOD's KNN score ("largest" method), squared. ``k`` is capped by the bank's
    length.

    With ``neighbour_fraction=f`` the read returns the k-th nearest stored vector with
    ``k = max(n_neighbours, round(f * len(bank)))``: ``k`` grows with the bank, so that a
    cluster of anomalies in the training data (a few per cent of it) does not make its
    members each other's near neighbours. ``k`` follows from the bank alone, so a saved and
    loaded memory reads the same neighbour.

    Parameters
    ----------
    dim : int
        Channel count ``C`` of the feature map the memory reads.
    metric : {"cosine", "euclidean"}
        How the nearest stored vector is chosen (the detector's ``distance``).
    bank_size : int or "auto"
        Most positions kept; "auto": ``CORESET_BANK_SIZE`` for a greedy coreset,
        ``BANK_SIZE`` for a random sample.
    n_neighbours : int
        Which neighbour a read returns (1: the nearest); the least with
        ``neighbour_fraction``.
    neighbour_fraction : float or None
        Which neighbour a read returns, as a fraction of the bank's length (see above).
    coreset : {"random", "greedy"}
        Which ``bank_size`` vectors are kept of more: a random sample, or PatchCore's greedy
        coreset (:func:`skmcad.nn.coreset.greedy_coreset`, by the bank's ``metric``), which
        leaves no training vector far from the bank but not their density, so it suits
        nearest-neighbour reads (``n_neighbours=1``).
    """

    def __init__(self, dim, metric="cosine", bank_size="auto", n_neighbours=1,
                 neighbour_fraction=None, coreset="random"):
        super().__init__()
        if coreset not in ("random", "greedy"):
            raise ValueError(f"coreset must be 'random' or 'greedy'; got {coreset!r}.")
        if bank_size == "auto":
            bank_size = CORESET_BANK_SIZE if coreset == "greedy" else BANK_SIZE
        self.metric, self.bank_size, self.coreset = metric, int(bank_size), coreset
        self.n_neighbours = int(n_neighbours)
        self.neighbour_fraction = neighbour_fraction
        self.register_buffer("bank", torch.zeros(1, dim))
        # during fit only: the training sample each stored vector came from, and the sample
        # of each query while the training data are scored (see leave_one_out)
        self.owners = self.query_owners = None

    @torch.no_grad()
    def initialize_from(self, features, generator=None, owners=None):
        """Store the vectors of ``features`` (B, C, H, W), a random ``bank_size`` of them;
        ``owners`` (B*H*W,), if given, names the training sample of each vector."""
        vectors = positions(features)  # (N, C)
        if len(vectors) > self.bank_size:
            keep = self._kept(vectors, generator)
            vectors = vectors[keep]
            owners = None if owners is None else owners[keep]
        self.bank = vectors.to(self.bank.dtype).clone()
        self.owners = owners

    def _kept(self, vectors, generator):
        """Indices of the ``bank_size`` rows of ``vectors`` (N, C) the bank keeps."""
        if self.coreset == "random":
            return torch.randperm(len(vectors), generator=generator,
                                  device=vectors.device)[:self.bank_size]
        seed = torch.randint(2 ** 31, (1,), generator=generator, device=vectors.device).item()
        if self.metric == "cosine":  # euclidean distances between unit vectors: cosine order
            vectors = F.normalize(vectors.float(), dim=1)
        return greedy_coreset(vectors, self.bank_size, random_state=seed)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # the bank's length is known only once it is filled: take the saved one's
        saved = state_dict.get(prefix + "bank")
        if saved is not None:
            self.bank = torch.empty_like(saved, dtype=self.bank.dtype, device=self.bank.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    @property
    def pool_size(self):
        """How many training vectors :meth:`initialize_from` should be offered (a random
        sample of them): the bank's size, ``CORESET_POOL`` times it for a greedy coreset."""
        return self.bank_size * (CORESET_POOL if self.coreset == "greedy" else 1)

    @property
    def neighbours_read(self):
        """The ``k`` of the k-th nearest stored vector a read returns (before the cap by
        the bank's length)."""
        if self.neighbour_fraction is None:
            return self.n_neighbours
        return max(self.n_neighbours, int(round(self.neighbour_fraction * len(self.bank))))

    def nearest(self, queries, owners=None):
        """Index of the nearest (the ``n_neighbours``-th nearest) stored vector of each row
        of ``queries`` (N, C); with ``owners`` (N,), the stored vectors of the query's own
        sample are passed over."""
        cosine = self.metric == "cosine"
        bank = F.normalize(self.bank, dim=1) if cosine else self.bank
        k = min(self.neighbours_read, len(bank))
        chunk = max(1, CHUNK_ELEMENTS // len(bank))
        two_pass = (cosine and len(bank) >= TWO_PASS_MIN_BANK
                    and native_bfloat16(bank.device))
        coarse_bank = bank.to(torch.bfloat16) if two_pass else None
        found = []
        for start, part in zip(range(0, len(queries), chunk), queries.split(chunk)):
            part = F.normalize(part, dim=1) if cosine else part
            own = None  # a training sample is not its own neighbour
            if owners is not None:
                own = own_vectors(self.owners, owners[start:start + len(part)])
            if two_pass:
                found.append(_kth_two_pass(part, bank, coarse_bank, k, own))
                continue
            # closeness: higher = nearer, (n, N_bank)
            closeness = part @ bank.T if cosine else -torch.cdist(part, bank)
            if own is not None:
                closeness[own] = -torch.inf
            found.append(closeness.topk(k, dim=1).indices[:, -1])  # (n,)
        return torch.cat(found)

    def forward(self, features):
        batch, channels, height, width = features.shape
        owners = None  # the sample of each query, while leave_one_out holds
        if self.query_owners is not None:
            owners = self.query_owners.repeat_interleave(height * width)  # (B*H*W,)
        queries = positions(features)  # (B*H*W, C)
        retrieved = self.bank[self.nearest(queries, owners=owners)]  # (B*H*W, C)
        retrieved = retrieved.reshape(batch, height, width, channels).permute(0, 3, 1, 2)
        attention = features.new_ones(batch * height * width, 1)
        return retrieved, attention


def _kth_two_pass(queries, bank, coarse_bank, k, own=None):
    """Index of the k-th nearest row of the unit ``bank`` (N_bank, C) to each unit query
    (n, C): candidates by the bfloat16 copy ``coarse_bank``, their order by float32; ``own``
    (rows, columns) are pairs passed over (see :data:`TWO_PASS_MIN_BANK`)."""
    coarse = queries.to(torch.bfloat16) @ coarse_bank.T  # (n, N_bank)
    if own is not None:
        coarse[own] = -torch.inf
    candidates = coarse.topk(min(k + PRESELECT - 1, len(bank)), dim=1)  # (n, m)
    exact = torch.einsum("nc,nmc->nm", queries, bank[candidates.indices])  # (n, m), float32
    exact = exact.masked_fill(candidates.values.isneginf(), -torch.inf)
    kth = exact.topk(k, dim=1).indices[:, -1:]  # (n, 1), among the candidates
    return candidates.indices.gather(1, kth).squeeze(1)


def own_vectors(bank_owners, query_owners):
    """Where each query meets a stored vector of its own sample: ``(rows, columns)`` with
    ``bank_owners[columns[i]] == query_owners[rows[i]]``, each such pair once.
    ``bank_owners`` (N_bank,) names the sample of each stored vector, ``query_owners`` (n,)
    that of each query. Masking these few entries costs far less than comparing every query
    with every stored vector."""
    order = torch.argsort(bank_owners, stable=True)  # the bank's vectors grouped by sample
    samples, counts = torch.unique_consecutive(bank_owners[order], return_counts=True)
    group = torch.searchsorted(samples, query_owners).clamp(max=len(samples) - 1)  # (n,)
    n_own = torch.where(samples[group] == query_owners, counts[group], 0)  # (n,)
    rows = torch.arange(len(query_owners), device=n_own.device).repeat_interleave(n_own)
    first = (counts.cumsum(0) - counts)[group].repeat_interleave(n_own)
    rank = torch.arange(len(rows), device=rows.device) - (
        n_own.cumsum(0) - n_own).repeat_interleave(n_own)  # each vector's place in its group
    return rows, order[first + rank]


@contextmanager
def leave_one_out(network, samples):
    """Within the block, the kNN banks of ``network`` read each query of the batch of training
    samples ``samples`` (B,) as if that sample's own vectors were not stored: the training
    scores then rank as those of unseen data (PyOD's KNN leaves each training point out
    likewise), so the threshold set on them holds on fresh data."""
    banks = [m for m in network.memories
             if isinstance(m, NearestNeighbourMemory) and m.owners is not None]
    for memory in banks:
        memory.query_owners = samples
    try:
        yield
    finally:
        for memory in banks:
            memory.query_owners = None


def forget_owners(network):
    """Drop what :func:`leave_one_out` needs, once the training data are scored."""
    for memory in network.memories:
        if isinstance(memory, NearestNeighbourMemory):
            memory.owners = memory.query_owners = None
