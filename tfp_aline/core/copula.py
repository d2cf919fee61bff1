"""The Gaussian-copula joint posterior: the network's marginal mixtures tied by a correlation matrix (copula head).

q(theta) = prod_l q_l(theta_l) * c(z; C), z_l = Phi^-1(F_l(theta_l)), with q_l and F_l the density and CDF
of parameter l's Gaussian mixture and c the Gaussian copula density of the correlation matrix C. Every
marginal of q is exactly the network's marginal q_l, and C = I gives back the product of marginals.
"""

import math

import tensorflow as tf
import tensorflow_probability as tfp

tfb, tfd = tfp.bijectors, tfp.distributions

COPULA_KEYS = ("mixture_logits", "mixture_locs", "mixture_scales", "copula_factors")
# Bisection of the mixture CDF: a bracket of the components' locs +- 40 sd, halved 60 times in float64.
_BRACKET_SD, _HALVINGS = 40.0, 60
_LOG_TAIL = -700.0  # log CDF floor (float64's exp underflows below about -745): |z| <= 37


def _log_ndtr(x):
    """log Phi(x), accurate in both tails (TFP's standard normal)."""
    return tfd.Normal(tf.zeros([], x.dtype), tf.ones([], x.dtype)).log_cdf(x)


def correlation_tril(factors):
    """Cholesky factor of the correlation matrix normalise(F F^T + I): factors [..., L, R] -> [..., L, L].

    A row of zeros makes that parameter independent of the others."""
    a = tf.linalg.matmul(factors, factors, transpose_b=True) + tf.eye(tf.shape(factors)[-2], dtype=factors.dtype)
    d = tf.sqrt(tf.linalg.diag_part(a))
    return tf.linalg.cholesky(a) / d[..., :, None]


class MixtureMarginals(tfb.Bijector):
    """Elementwise standard-normal z <-> theta through each parameter's mixture: theta_l = F_l^-1(Phi(z_l)).

    logits, locs, scales: [..., L, K]. The inverse and its log-Jacobian are closed form; the forward
    direction (sampling) inverts the mixture CDF by bisection. Computed in float64 so that the tails
    (CDF near 0 or 1) keep their z."""

    def __init__(self, logits, locs, scales, validate_args=False, name="mixture_marginals"):
        parameters = dict(locals())
        f64 = lambda v: tf.cast(v, tf.float64)  # noqa: E731
        self._log_w = tf.nn.log_softmax(f64(logits), -1)
        self._locs, self._scales = f64(locs), f64(scales)
        self._dtype_out = tf.as_dtype(tf.convert_to_tensor(locs).dtype)
        super().__init__(
            forward_min_event_ndims=0,
            validate_args=validate_args,
            parameters=parameters,
            dtype=self._dtype_out,
            name=name,
        )

    @classmethod
    def _parameter_properties(cls, dtype):
        return {}  # not batch-sliced by TFP; the shapes are documented above

    def _log_cdf_sf(self, theta):
        """log F(theta) and log (1 - F(theta)), each [..., L], in float64."""
        u = (tf.cast(theta, tf.float64)[..., None] - self._locs) / self._scales
        return (
            tf.reduce_logsumexp(self._log_w + _log_ndtr(u), -1),
            tf.reduce_logsumexp(self._log_w + _log_ndtr(-u), -1),
        )

    def _inverse(self, theta):
        log_cdf, log_sf = self._log_cdf_sf(theta)
        # Phi^-1 of whichever tail is smaller, so that neither rounds to 1.
        lower = tf.math.ndtri(tf.exp(tf.maximum(log_cdf, _LOG_TAIL)))
        upper = -tf.math.ndtri(tf.exp(tf.maximum(log_sf, _LOG_TAIL)))
        return tf.cast(tf.where(log_cdf < log_sf, lower, upper), self._dtype_out)

    def _inverse_log_det_jacobian(self, theta):
        t = tf.cast(theta, tf.float64)
        u = (t[..., None] - self._locs) / self._scales
        log_density = tf.reduce_logsumexp(
            self._log_w - 0.5 * u**2 - tf.math.log(self._scales) - 0.5 * math.log(2.0 * math.pi), -1
        )
        z = tf.cast(self._inverse(theta), tf.float64)
        log_phi = -0.5 * z**2 - 0.5 * math.log(2.0 * math.pi)
        return tf.cast(log_density - log_phi, self._dtype_out)

    def _forward(self, z):
        z = tf.cast(z, tf.float64)
        lo = tf.reduce_min(self._locs - _BRACKET_SD * self._scales, -1)  # [..., L]
        hi = tf.reduce_max(self._locs + _BRACKET_SD * self._scales, -1)
        lo, hi = lo + tf.zeros_like(z), hi + tf.zeros_like(z)
        # Solve in the tail z is in: log F(theta) = log Phi(z) for z < 0, log(1 - F) = log Phi(-z) above.
        target = _log_ndtr(-tf.abs(z))
        below_half = z < 0

        def halve(i, bounds):
            lo, hi = bounds
            mid = 0.5 * (lo + hi)
            log_cdf, log_sf = self._log_cdf_sf(mid)
            left = tf.where(below_half, log_cdf < target, log_sf > target)  # the root is right of mid
            return i + 1, (tf.where(left, mid, lo), tf.where(left, hi, mid))

        _, (lo, hi) = tf.while_loop(lambda i, _: i < _HALVINGS, halve, (tf.constant(0), (lo, hi)))
        return tf.cast(0.5 * (lo + hi), self._dtype_out)


def copula_posterior(outputs, indices=None):
    """The copula joint q(theta_S | D) over the parameter indices S (None: all L).

    A `tfd.TransformedDistribution` of a correlated standard normal, batch [B], event [|S|], with
    `sample` and `log_prob`; its marginals are exactly the network's mixtures (`AlineModel.posterior`)."""
    logits, locs, scales, factors = (tf.cast(outputs[k], tf.float32) for k in COPULA_KEYS)
    if indices is not None:
        idx = list(indices)
        logits, locs, scales, factors = (tf.gather(v, idx, axis=-2) for v in (logits, locs, scales, factors))
    base = tfd.MultivariateNormalTriL(loc=tf.zeros(tf.shape(locs)[:-1]), scale_tril=correlation_tril(factors))
    return tfd.TransformedDistribution(base, MixtureMarginals(logits, locs, scales))


def copula_log_prob(outputs, theta, mask=None):
    """log q(theta_S | D) of each episode's own subset S: theta [B, L], mask [B, L] bool (None: all) -> [B].

    A parameter outside S is made independent (its factor row zeroed) and put at z = 0, its standard
    normal density there taken off again, and its marginal left out: what remains is the copula over S."""
    logits, locs, scales, factors = (tf.cast(outputs[k], tf.float32) for k in COPULA_KEYS)
    theta = tf.cast(theta, tf.float32)
    if mask is None:
        return copula_posterior(outputs).log_prob(theta)
    m = tf.cast(mask, tf.float32)
    marginals = MixtureMarginals(logits, locs, scales)
    z = marginals.inverse(theta) * m
    ildj = marginals.inverse_log_det_jacobian(theta, event_ndims=0) * m  # log q_l(theta_l) - log phi(z_l)
    gauss = tfd.MultivariateNormalTriL(loc=tf.zeros_like(z), scale_tril=correlation_tril(factors * m[..., None]))
    outside = tf.reduce_sum(1.0 - m, -1)
    return gauss.log_prob(z) + tf.reduce_sum(ildj, -1) + 0.5 * math.log(2.0 * math.pi) * outside
