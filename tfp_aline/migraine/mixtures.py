"""Summaries of the network's Gaussian-mixture marginals: moments and quantiles, in numpy."""

from __future__ import annotations

import numpy as np
from scipy.special import ndtr

# The network outputs that make up the posterior mixture (`AlineModel.posterior`).
MIXTURE_KEYS = ("mixture_logits", "mixture_locs", "mixture_scales")
QUANTILES = (0.05, 0.95)


def mixture_moments(logits, locs, scales):
    """Mean and sd of Gaussian mixtures: arrays [..., K] -> ([...], [...])."""
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    mean = (w * locs).sum(-1)
    var = (w * (scales**2 + locs**2)).sum(-1) - mean**2
    return mean, np.sqrt(np.maximum(var, 0.0))


def mixture_quantiles(logits, locs, scales, probs=QUANTILES, iterations=60):
    """Quantiles of Gaussian mixtures by bisection on the exact mixture CDF.

    logits, locs, scales: [L, K] -> [L, len(probs)]. 60 halvings of a bracket a few dozen sd wide
    leave an error far below 1e-6.
    """
    w = np.exp(logits - logits.max(-1, keepdims=True))
    w /= w.sum(-1, keepdims=True)
    p = np.asarray(probs, float)[None, :, None]  # [1, Q, 1]
    lo = np.broadcast_to((locs - 12 * scales).min(-1)[:, None], (len(locs), p.shape[1])).copy()
    hi = np.broadcast_to((locs + 12 * scales).max(-1)[:, None], lo.shape).copy()
    w, locs, scales = w[:, None], locs[:, None], scales[:, None]  # [L, 1, K]
    for _ in range(iterations):
        mid = 0.5 * (lo + hi)
        below = (w * ndtr((mid[..., None] - locs) / scales)).sum(-1) < p[..., 0]
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return 0.5 * (lo + hi)
