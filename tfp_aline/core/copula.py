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
# Sampling inverts the mixture CDF in float64 inside a bracket of the components' locs +- 40 sd:
# a start interpolated from a grid of z(theta) (each component's locs +- 8 sd), then safeguarded Newton.
_BRACKET_SD, _GRID_SD, _GRID_PER_COMPONENT, _NEWTON_STEPS, _Z_TOLERANCE = 40.0, 8.0, 33, 8, 1e-10
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
    direction (sampling) inverts the mixture CDF numerically (grid start, safeguarded Newton). Computed in
    float64 so that the tails (CDF near 0 or 1) keep their z."""

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

    def _z_and_log_density(self, theta):
        """z(theta) = Phi^-1(F(theta)) and log q(theta) at theta [..., L, n] (n points per parameter), float64."""
        u = (theta[..., None] - self._locs[..., None, :]) / self._scales[..., None, :]  # [..., L, n, K]
        log_w = self._log_w[..., None, :]
        log_cdf = tf.reduce_logsumexp(log_w + _log_ndtr(u), -1)
        log_sf = tf.reduce_logsumexp(log_w + _log_ndtr(-u), -1)
        log_density = tf.reduce_logsumexp(
            log_w - 0.5 * u**2 - tf.math.log(self._scales)[..., None, :] - 0.5 * math.log(2.0 * math.pi), -1
        )
        return _tail_z(log_cdf, log_sf), log_density

    def _z_and_log_density_at(self, theta):
        """The same at one point per parameter: theta [..., L] -> two [..., L] tensors."""
        z, log_density = self._z_and_log_density(tf.cast(theta, tf.float64)[..., None])
        return z[..., 0], log_density[..., 0]

    def _inverse(self, theta):
        return tf.cast(self._z_and_log_density_at(theta)[0], self._dtype_out)

    def _inverse_log_det_jacobian(self, theta):
        z, log_density = self._z_and_log_density_at(theta)
        log_phi = -0.5 * z**2 - 0.5 * math.log(2.0 * math.pi)
        return tf.cast(log_density - log_phi, self._dtype_out)

    def _forward(self, z):
        # Solve z(theta) = z per draw: z(theta) is tabulated once per parameter on a grid over the bracket
        # (cost independent of the number of draws), each draw starts from the interpolated grid and is
        # polished by Newton steps on z(theta), which is close to linear (exactly so for one component);
        # a step leaving the bracket is replaced by bisection, so multi-modal mixtures converge too.
        batch_rank = self._locs.shape.rank - 1  # [..., L]
        z = tf.cast(z, tf.float64)
        z = tf.broadcast_to(z, tf.broadcast_dynamic_shape(tf.shape(z), tf.shape(self._locs)[:-1]))
        extra = z.shape.rank - batch_rank  # leading sample dimensions
        perm = list(range(extra, extra + batch_rank)) + list(range(extra))
        sample_shape, batch_shape = tf.shape(z)[:extra], tf.shape(z)[extra:]
        flat = tf.reshape(tf.transpose(z, perm), tf.concat([batch_shape, [-1]], 0))  # [..., L, n]

        lo = tf.reduce_min(self._locs - _BRACKET_SD * self._scales, -1)[..., None]  # [..., L, 1]
        hi = tf.reduce_max(self._locs + _BRACKET_SD * self._scales, -1)[..., None]
        # Grid points at each component's own scale, so that narrow components are resolved too.
        offsets = tf.linspace(tf.constant(-_GRID_SD, tf.float64), _GRID_SD, _GRID_PER_COMPONENT)
        at = self._locs[..., None] + self._scales[..., None] * offsets  # [..., L, K, g]
        at = tf.reshape(at, tf.concat([tf.shape(at)[:-2], [-1]], 0))
        grid = tf.sort(tf.concat([lo, at, hi], -1), -1)  # [..., L, G]
        size = tf.shape(grid)[-1]
        grid_z, _ = self._z_and_log_density(grid)
        right = tf.clip_by_value(tf.searchsorted(grid_z, flat, side="right"), 1, size - 1)
        a, b = tf.gather(grid, right - 1, batch_dims=batch_rank), tf.gather(grid, right, batch_dims=batch_rank)
        za, zb = tf.gather(grid_z, right - 1, batch_dims=batch_rank), tf.gather(grid_z, right, batch_dims=batch_rank)
        span = zb - za
        frac = tf.clip_by_value(tf.math.divide_no_nan(flat - za, span), 0.0, 1.0)
        theta = tf.where(span > 0, a + frac * (b - a), 0.5 * (a + b))

        def newton(i, theta, a, b, _):
            z_theta, log_density = self._z_and_log_density(theta)
            below = z_theta < flat
            a, b = tf.where(below, theta, a), tf.where(below, b, theta)
            # d z / d theta = q(theta) / phi(z(theta))
            slope = tf.exp(log_density + 0.5 * z_theta**2 + 0.5 * math.log(2.0 * math.pi))
            step = theta - (z_theta - flat) / slope
            inside = (step >= a) & (step <= b) & tf.math.is_finite(step)
            return i + 1, tf.where(inside, step, 0.5 * (a + b)), a, b, tf.reduce_max(tf.abs(z_theta - flat))

        # Stops once every draw is solved (usually 3 steps), at most _NEWTON_STEPS.
        _, theta, *_ = tf.while_loop(
            lambda i, *r: (i < _NEWTON_STEPS) & (r[-1] > _Z_TOLERANCE),
            newton,
            (tf.constant(0), theta, a, b, tf.constant(math.inf, tf.float64)),
        )
        theta = tf.reshape(theta, tf.concat([batch_shape, sample_shape], 0))
        inverse_perm = list(range(batch_rank, batch_rank + extra)) + list(range(batch_rank))
        return tf.cast(tf.transpose(theta, inverse_perm), self._dtype_out)


def _tail_z(log_cdf, log_sf):
    """Phi^-1(F) from log F and log (1 - F), through whichever tail is smaller so that neither rounds to 1."""
    lower = tf.math.ndtri(tf.exp(tf.maximum(log_cdf, _LOG_TAIL)))
    upper = -tf.math.ndtri(tf.exp(tf.maximum(log_sf, _LOG_TAIL)))
    return tf.where(log_cdf < log_sf, lower, upper)


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
