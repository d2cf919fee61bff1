"""A per-person check of an amortized posterior: Pareto-smoothed importance sampling (ArviZ) on the exact posterior."""

from __future__ import annotations

import warnings
from typing import NamedTuple

import numpy as np
import tensorflow as tf

# Vehtari et al. (2024), "Pareto smoothed importance sampling": above 0.7 the importance
# weights have too heavy a tail for any practical sample size to give a reliable estimate.
KHAT_MAX = 0.7


def _psislw(log_ratios):
    """ArviZ's PSIS on log importance ratios [P, S] (samples on the last axis) ->
    (smoothed, self-normalised log weights [P, S], k-hat [P])."""
    with warnings.catch_warnings():
        # ArviZ announces its coming refactor on import, and warns when k-hat is large; the
        # check reports k-hat itself.
        warnings.simplefilter("ignore")
        import arviz

        lw, khat = arviz.psislw(np.asarray(log_ratios, np.float64), reff=1.0)
    return np.asarray(lw), np.atleast_1d(np.asarray(khat, np.float64))


class PsisCheck(NamedTuple):
    """The check for P people, from S amortized draws each.

    samples:     [S, P, L] draws of the amortized posterior q
    log_weights: [P, S] Pareto-smoothed, self-normalised log importance weights p(theta | D) / q
    khat:        [P] Pareto k-hat of the raw weights' tail
    ess:         [P] effective sample size of the smoothed weights, 1 / sum w^2
    """

    samples: np.ndarray
    log_weights: np.ndarray
    khat: np.ndarray
    ess: np.ndarray

    @property
    def ok(self) -> np.ndarray:
        """[P] bool: k-hat <= 0.7, the corrected posterior can be used."""
        return self.khat <= KHAT_MAX

    def person(self, i: int) -> PsisCheck:
        """The check of person i alone (P = 1)."""
        one = slice(i, i + 1)
        return PsisCheck(self.samples[:, one], self.log_weights[one], self.khat[one], self.ess[one])

    @property
    def weights(self) -> np.ndarray:
        """[P, S] normalised importance weights."""
        return np.exp(self.log_weights)

    def corrected_mean(self) -> np.ndarray:
        """Posterior mean of the importance-weighted (corrected) posterior: [P, L]."""
        return np.einsum("ps,spl->pl", self.weights, self.samples)

    def corrected_sd(self) -> np.ndarray:
        """Posterior sd of the corrected posterior: [P, L]."""
        mean = self.corrected_mean()
        return np.sqrt(np.einsum("ps,spl->pl", self.weights, (self.samples - mean[None]) ** 2))

    def corrected_quantiles(self, probs) -> np.ndarray:
        """Weighted quantiles of the corrected posterior: [P, L, len(probs)] (inverse of the
        weighted empirical CDF, interpolated between the sorted draws' mid-points)."""
        x = np.moveaxis(self.samples, 0, -1)  # [P, L, S]
        order = np.argsort(x, -1)
        xs = np.take_along_axis(x, order, -1)
        w = np.broadcast_to(self.weights[:, None, :], x.shape)
        ws = np.take_along_axis(w, order, -1)
        cdf = np.cumsum(ws, -1) - 0.5 * ws  # mid-point rule: each draw sits at the middle of its mass
        out = np.empty(x.shape[:2] + (len(probs),))
        for p in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[p, j] = np.interp(probs, cdf[p, j], xs[p, j])
        return out


def draw_log_ratios(task, posterior, x, y, mask, num_samples: int, seed):
    """S draws of the amortized `posterior` and their log importance ratios, graph-safe (no numpy):
    -> (samples [S, P, L] in the posterior's dtype, log p(theta, D) - log q(theta | D) [P, S] float64).

    Shapes and the -inf rule as `log_importance_ratios`; `seed` a stateless seed [2]."""
    s = posterior.sample(num_samples, seed=seed)
    return s, _log_ratios(task, posterior, s, x, y, mask)


def _log_ratios(task, posterior, s, x, y, mask):
    log_q = tf.cast(posterior.log_prob(tf.cast(s, posterior.dtype)), tf.float64)
    if posterior.event_shape.rank == 0:  # marginals: [S, P, L] -> [S, P]
        log_q = tf.reduce_sum(log_q, -1)
    log_p = tf.cast(task.log_posterior(tf.cast(s, task.dtype), x, y, mask), tf.float64)  # [S, P]
    ratio = tf.transpose(log_p - log_q)
    return tf.where(tf.math.is_nan(ratio), tf.constant(-np.inf, tf.float64), ratio)


def log_importance_ratios(task, posterior, samples, x, y, mask=None):
    """log p(theta, D) - log q(theta | D) of each draw: samples [S, P, L] -> [P, S].

    `posterior` is the amortized posterior: the mean-field marginals (batch [P, L]) or a joint
    (batch [P], event [L], `core.joint`); the task's unnormalised log posterior is exact, so the
    ratios are exact up to a constant per person. Draws outside the prior's support get ratio
    -inf (weight 0)."""
    return _log_ratios(task, posterior, tf.constant(samples, task.dtype), x, y, mask).numpy()


def psis_from_log_ratios(samples, log_ratios) -> PsisCheck:
    """PSIS of given draws [S, P, L] and their log importance ratios [P, S] (`draw_log_ratios`)."""
    lw, khat = _psislw(log_ratios)
    ess = 1.0 / np.sum(np.exp(2.0 * lw), -1)
    return PsisCheck(np.asarray(samples, np.float64), lw, khat, ess)


def psis_check(task, posterior, x, y, mask=None, num_samples: int = 1000, seed=(0, 0), samples=None) -> PsisCheck:
    """Importance-weight S draws of the amortized `posterior` by the task's exact unnormalised
    posterior and smooth the weights with PSIS: k-hat and ESS per person.

    posterior: tfd with batch shape [P, L] (the amortized marginals) or a joint with batch [P] and
    event [L]; x: [P, n, Dx], y: [P, n, Dy],
    mask: [P, n] bool or None; samples: [S, P, L] draws of `posterior` to reuse (else S are drawn
    with `seed`). k-hat <= 0.7: the weighted draws are a usable correction of q; above, the
    weights are unreliable and the task's exact reference should be used instead. Eager; a caller
    that checks often compiles `draw_log_ratios` and calls `psis_from_log_ratios` (the advice service)."""
    if samples is None:
        samples = posterior.sample(num_samples, seed=tf.constant(seed, tf.int32)).numpy()
    samples = np.asarray(samples, np.float64)
    return psis_from_log_ratios(samples, log_importance_ratios(task, posterior, samples, x, y, mask))
