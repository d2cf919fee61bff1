"""Per-episode evaluation metrics: posterior error, interval coverage, predictive scores, SBC ranks."""

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


def rmse_paper(samples, theta, mask, support=None):
    """The ALINE paper's RMSE: samples clipped to the prior's box `support` = (low [L], high [L])
    (None: unbounded), the root mean squared error over samples per parameter, then the mean over
    the target parameters: samples [S, B, L], theta, mask [B, L] -> [B].

    It is not the root of a mean over parameters, and it rewards over-confident posteriors, so
    it is reported beside the posterior-mean RMSE and coverage."""
    samples = np.asarray(samples, np.float64)
    if support is not None:
        samples = np.clip(samples, np.asarray(support[0]), np.asarray(support[1]))
    per_parameter = np.sqrt(np.mean((samples - theta[None]) ** 2, axis=0))  # [B, L]
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
