"""The joint posterior's density: a mixture of full-covariance Gaussians from the joint head's outputs
(or, for a copula head, the Gaussian copula of `core/copula.py`: every function here takes either)."""

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.copula import COPULA_KEYS, copula_log_prob, copula_posterior

tfd = tfp.distributions

JOINT_KEYS = ("joint_logits", "joint_locs", "joint_scales", "joint_factors")


def joint_keys(outputs) -> tuple:
    """The network outputs the joint posterior is made of: JOINT_KEYS, COPULA_KEYS, or () without a joint."""
    if "joint_logits" in outputs:
        return JOINT_KEYS
    if "copula_factors" in outputs:
        return COPULA_KEYS
    return ()


def _scale_tril(scales, factors):
    """Cholesky factor of diag(s) normalise(F F^T + I) diag(s): scales [..., L], factors [..., L, R] -> [..., L, L]."""
    a = tf.linalg.matmul(factors, factors, transpose_b=True) + tf.eye(tf.shape(factors)[-2], dtype=factors.dtype)
    d = tf.sqrt(tf.linalg.diag_part(a))
    # chol(diag(s/d) A diag(s/d)) = diag(s/d) chol(A); A's eigenvalues are >= 1, so this never fails.
    return (scales / d)[..., :, None] * tf.linalg.cholesky(a)


def joint_posterior(outputs, indices=None):
    """The joint posterior q(theta_S | D) over the parameters `indices` (a tuple of ints; None: all L).

    A `tfd.MixtureSameFamily` of `tfd.MultivariateNormalTriL`, batch shape [B], event [|S|]; it is
    the exact marginal over S of the joint over all L parameters. With a copula head's outputs, the
    copula (`core.copula.copula_posterior`) instead.
    """
    if "copula_factors" in outputs:
        return copula_posterior(outputs, indices)
    logits, locs, scales, factors = (tf.cast(outputs[k], tf.float32) for k in JOINT_KEYS)
    if indices is not None:
        idx = list(indices)
        locs, scales, factors = (
            tf.gather(locs, idx, axis=-1),
            tf.gather(scales, idx, axis=-1),
            tf.gather(factors, idx, axis=-2),
        )
    return tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits),
        tfd.MultivariateNormalTriL(loc=locs, scale_tril=_scale_tril(scales, factors)),
    )


def joint_log_prob(outputs, theta, mask=None):
    """log q(theta_S | D) of each episode's own subset S: theta [B, L], mask [B, L] bool (None: all) -> [B].

    A parameter outside S gets loc 0, sd 1 and no correlation, and is scored at 0; its standard
    normal density is then taken off again, which leaves exactly the marginal density over S.
    """
    if "copula_factors" in outputs:
        return copula_log_prob(outputs, theta, mask)
    logits, locs, scales, factors = (tf.cast(outputs[k], tf.float32) for k in JOINT_KEYS)
    theta = tf.cast(theta, tf.float32)
    if mask is None:
        return joint_posterior(outputs).log_prob(theta)
    m = tf.cast(mask, tf.float32)
    mk = m[:, None, :]  # [B, 1, L]
    q = tfd.MixtureSameFamily(
        tfd.Categorical(logits=logits),
        tfd.MultivariateNormalTriL(
            loc=locs * mk,
            scale_tril=_scale_tril(scales * mk + (1.0 - mk), factors * mk[..., None]),
        ),
    )
    outside = tf.reduce_sum(1.0 - m, -1)
    return q.log_prob(theta * m) + 0.5 * math.log(2.0 * math.pi) * outside


def mixture_moments(dist):
    """Mean [..., D] and covariance [..., D, D] of a `joint_posterior` mixture, in closed form."""
    w = dist.mixture_distribution.probs_parameter()[..., :, None]  # [..., K, 1]
    mu = dist.components_distribution.mean()  # [..., K, D]
    cov = dist.components_distribution.covariance()  # [..., K, D, D]
    mean = tf.reduce_sum(w * mu, -2)
    second = tf.reduce_sum(w[..., None] * (cov + mu[..., :, None] * mu[..., None, :]), -3)
    return mean, second - mean[..., :, None] * mean[..., None, :]
