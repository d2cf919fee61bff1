"""Per-episode evaluation metrics: posterior error, coverage, predictive scores, SBC ranks and their ECDF test."""

from __future__ import annotations

import numpy as np


def _masked_mean(values, mask):
    """Mean over the last axis where mask is True: [..., L] -> [...]."""
    mask = np.asarray(mask, np.float64)
    return np.sum(values * mask, -1) / np.maximum(mask.sum(-1), 1.0)


def rmse_mean(mean, theta, mask):
    """Posterior-mean RMSE over the target parameters: mean, theta [B, L], mask [B, L] bool -> [B]."""
    return np.sqrt(_masked_mean((np.asarray(mean) - theta) ** 2, mask))


def rmse_sample(samples, theta, mask):
    """Root of the mean, over posterior samples and target parameters, of the squared error:
    samples [S, B, L], theta, mask [B, L] -> [B]."""
    sq = np.mean((np.asarray(samples) - theta[None]) ** 2, axis=0)
    return np.sqrt(_masked_mean(sq, mask))


def rmse_paper(samples, theta, mask, support=None, weights=None):
    """The ALINE paper's RMSE: samples clipped to the prior's box `support` = (low [L], high [L])
    (None: unbounded), the root mean squared error over samples per parameter, then the mean over
    the target parameters: samples [S, B, L], theta, mask [B, L] -> [B]. `weights` [B, S]
    (normalised importance weights, e.g. `PsisCheck.weights`) makes the mean over samples a
    weighted one: the paper's RMSE of the corrected posterior.

    It is not the root of a mean over parameters, and it rewards over-confident posteriors, so
    it is reported beside the posterior-mean RMSE and coverage."""
    samples = np.asarray(samples, np.float64)
    if support is not None:
        samples = np.clip(samples, np.asarray(support[0]), np.asarray(support[1]))
    squared = (samples - theta[None]) ** 2  # [S, B, L]
    if weights is None:
        per_parameter = np.sqrt(np.mean(squared, axis=0))  # [B, L]
    else:
        per_parameter = np.sqrt(np.einsum("bs,sbl->bl", np.asarray(weights, np.float64), squared))
    return _masked_mean(per_parameter, mask)


def interval_coverage(samples, theta, mask, level: float):
    """Share of target parameters inside the central `level` interval of the samples: [B]."""
    lo, hi = np.quantile(samples, [(1 - level) / 2, (1 + level) / 2], axis=0)
    inside = (theta >= lo) & (theta <= hi)
    return _masked_mean(inside.astype(np.float64), mask)


def coverage_from_cdf(cdf_at_truth, mask, level: float):
    """Central-interval coverage from the posterior CDF at the true value (exact for continuous
    marginals: theta is inside the central interval iff its CDF lies in [(1-l)/2, (1+l)/2]): [B]."""
    u = np.asarray(cdf_at_truth)
    inside = (u >= (1 - level) / 2) & (u <= (1 + level) / 2)
    return _masked_mean(inside.astype(np.float64), mask)


def sbc_ranks(samples, theta, mask):
    """Simulation-based calibration ranks: number of samples below the truth, for every active
    (episode, parameter) pair. samples [S, B, L] -> int array [K] with values in 0..S."""
    ranks = np.sum(np.asarray(samples) < theta[None], axis=0)
    return ranks[np.asarray(mask, bool)]


def sbc_uniformity_pvalue(ranks, num_samples: int, bins: int = 20):
    """Chi-square test that SBC ranks (0..S) are uniform, using `bins` equal-width bins."""
    from scipy import stats

    edges = np.linspace(0, num_samples + 1, bins + 1)
    counts, _ = np.histogram(ranks, bins=edges)
    expected = len(ranks) * np.diff(edges) / (num_samples + 1)
    return float(stats.chisquare(counts, expected).pvalue)


# Simultaneous ECDF bands and the ECDF test for SBC ranks (Säilynoja, Bürkner and Vehtari 2022,
# "Graphical test for discrete uniformity and its applications in goodness-of-fit evaluation and
# multiple sample comparison", Stat. Comput. 32:32). With K ranks in 0..S, the ECDF at the points
# z_i = (i + 1) / (S + 1), i = 0..S-1, times K is Binomial(K, z_i) at each point under uniformity;
# gamma = the smallest two-sided pointwise tail probability over the points. Its null distribution
# is simulated once per (K, S); the band at level 1 - alpha holds the pointwise binomial intervals
# of level gamma*, the alpha quantile of that distribution, and p = P(gamma_null <= gamma).
_ECDF_NULL = {}


def _ecdf_points(num_samples: int) -> np.ndarray:
    return np.arange(1, num_samples + 1) / (num_samples + 1)


def _ecdf_gamma(counts_below, num_ranks: int, z):
    """Smallest two-sided pointwise binomial tail probability: counts_below [..., S] (ranks <= i) -> [...]."""
    from scipy import stats

    lower = stats.binom.cdf(counts_below, num_ranks, z)
    upper = stats.binom.sf(counts_below - 1, num_ranks, z)
    return np.minimum(1.0, 2.0 * np.minimum(lower, upper)).min(-1)


def _ecdf_null(num_ranks: int, num_samples: int, num_sims: int = 4000):
    """gamma of `num_sims` uniform rank samples (fixed seed): [num_sims], sorted."""
    key = (num_ranks, num_samples, num_sims)
    if key not in _ECDF_NULL:
        rng = np.random.default_rng(20220318)
        counts = rng.multinomial(num_ranks, np.full(num_samples + 1, 1.0 / (num_samples + 1)), size=num_sims)
        below = np.cumsum(counts, -1)[:, :num_samples]
        _ECDF_NULL[key] = np.sort(_ecdf_gamma(below, num_ranks, _ecdf_points(num_samples)))
    return _ECDF_NULL[key]


def _counts_below(ranks, num_samples: int) -> np.ndarray:
    return np.cumsum(np.bincount(np.asarray(ranks, int), minlength=num_samples + 1))[:num_samples]


def sbc_ecdf_pvalue(ranks, num_samples: int) -> float:
    """ECDF test that SBC ranks (0..S) are uniform: the share of uniform rank samples whose ECDF
    strays at least as far from the diagonal at some point (smallest pointwise tail probability
    as small or smaller). p < alpha exactly when the ECDF leaves the 1 - alpha simultaneous band."""
    k = len(ranks)
    if k == 0:
        return float("nan")
    gamma = _ecdf_gamma(_counts_below(ranks, num_samples), k, _ecdf_points(num_samples))
    null = _ecdf_null(k, num_samples)
    return float(np.searchsorted(null, gamma, side="right") / len(null))


def sbc_ecdf_band(num_ranks: int, num_samples: int, prob: float = 0.99):
    """Simultaneous band of level `prob` for the ECDF of K uniform ranks in 0..S: (z [S], lower [S],
    upper [S]), the ECDF values at z_i = (i + 1) / (S + 1) that uniform ranks stay within, at all
    points at once, with probability `prob`."""
    from scipy import stats

    z = _ecdf_points(num_samples)
    null = _ecdf_null(num_ranks, num_samples)
    gamma = null[int(np.floor((1 - prob) * len(null)))]  # the (1 - prob) quantile of the null gamma
    lower = stats.binom.ppf(gamma / 2, num_ranks, z) / num_ranks
    upper = stats.binom.isf(gamma / 2, num_ranks, z) / num_ranks
    return z, lower, upper


def sbc_ecdf(ranks, num_samples: int):
    """ECDF of SBC ranks at z_i = (i + 1) / (S + 1): (z [S], ecdf [S])."""
    return _ecdf_points(num_samples), _counts_below(ranks, num_samples) / max(len(ranks), 1)


def coverage_curve(cdf_at_truth, mask, levels):
    """Coverage of the central intervals at every credibility level: the share of active
    (episode, parameter) pairs whose true value lies inside the central `level` interval, from
    the posterior CDF at the truth. cdf_at_truth, mask [B, L]; levels [V] -> [V]."""
    u = np.asarray(cdf_at_truth)[np.asarray(mask, bool)]
    if not len(u):
        return np.full(len(levels), np.nan)
    half = np.abs(u - 0.5)
    return np.array([np.mean(half <= level / 2) for level in levels])


def log_loss(p, y):
    """Mean negative log-likelihood of binary outcomes per episode: p, y [B, M] -> [B]."""
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return -np.mean(y * np.log(p) + (1 - y) * np.log1p(-p), axis=-1)


def brier(p, y):
    """Mean squared error of the probabilities per episode: [B, M] -> [B]."""
    return np.mean((p - y) ** 2, axis=-1)


def auc(p, y):
    """Area under the ROC curve of pooled scores (Mann-Whitney, ties count half); nan if one class."""
    from scipy import stats

    p, y = np.ravel(p), np.ravel(y).astype(bool)
    n_pos, n_neg = y.sum(), (~y).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = stats.rankdata(p)
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def summarize(values, level: float = 0.95):
    """Mean and normal-approximation confidence interval of per-episode values, ignoring nan:
    -> (mean, ci_low, ci_high, n)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    n = len(v)
    if n == 0:
        return float("nan"), float("nan"), float("nan"), 0
    mean = float(v.mean())
    if n == 1:
        return mean, mean, mean, 1
    from scipy import stats

    half = float(stats.norm.ppf(0.5 + level / 2) * v.std(ddof=1) / np.sqrt(n))
    return mean, mean - half, mean + half, n


def bootstrap_auc(p, y, num_boot: int = 200, seed: int = 0):
    """Pooled AUC over episodes with a percentile bootstrap over episodes: p, y [B, M] ->
    (auc, ci_low, ci_high, B)."""
    rng = np.random.default_rng(seed)
    point = auc(p, y)
    b = p.shape[0]
    boots = [auc(p[i], y[i]) for i in (rng.integers(0, b, b) for _ in range(num_boot))]
    boots = np.asarray(boots)[np.isfinite(boots)]
    if len(boots) == 0:
        return point, float("nan"), float("nan"), b
    return point, float(np.quantile(boots, 0.025)), float(np.quantile(boots, 0.975)), b
