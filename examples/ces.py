"""The ALINE paper's second BED benchmark, constant elasticity of substitution (CES), as a task outside the package.

A participant compares two baskets of K = 3 goods, z and z' in [0, 100]^3, and rates how much more
they like the first on a slider from 0 to 1. With theta = (rho, alpha_1..3, log u),

    rho ~ Beta(1, 1),   alpha ~ Dirichlet(1, 1, 1),   log u ~ Normal(1, 3),
    U(z) = (sum_i alpha_i z_i^rho)^(1 / rho),
    eta ~ Normal(u (U(z) - U(z')), (u tau (1 + ||z - z'||))^2),   slider = clip(sigmoid(eta), eps, 1 - eps),

with tau = 0.005 and eps = 2^-22. The slider is a monotone function of eta clipped to
[logit(eps), logit(1 - eps)], so the task reports y = that clipped eta (a censored Normal: an atom
at each end, a density in between). This carries the same information as the slider, and the
likelihood ratios that sPCE and the posterior depend on are the same. A design is the pair of
baskets divided by 100, x = (z, z') / 100 in [0, 1]^6, so that the network sees inputs of unit scale.

Like `examples/location_finding.py`, nothing here is part of `tfp_aline`; a config names the class
(run from the repository root with `PYTHONPATH=.`, so that `examples` is importable):

    task:
      class: examples.ces:CESTask
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.tasks.base import Task

tfd = tfp.distributions

GOODS = 3
BASKET_SCALE = 100.0  # a design coordinate of 1 is 100 units of a good


@dataclasses.dataclass(frozen=True)
class CESOptions:
    """The task's config section.

    tau:      the noise scale per unit of utility and basket distance (paper: 0.005)
    epsilon:  the slider's clip at both ends (paper: 2^-22)
    """

    tau: float = 0.005
    epsilon: float = 2.0**-22

    def __post_init__(self):
        if not (np.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"task.tau = {self.tau!r}: expected a positive number")
        if not 0 < self.epsilon < 0.5:
            raise ValueError(f"task.epsilon = {self.epsilon!r}: expected a number in (0, 0.5)")


class CensoredNormal(tfd.Distribution):
    """Normal(loc, scale) clipped to [low, high]: an atom of mass Phi((low - loc) / scale) at low,
    one of mass 1 - Phi((high - loc) / scale) at high, and the Normal density in between.

    `log_prob` returns the log mass at the two ends and the log density inside; both are what the
    likelihood of a clipped observation is, so posteriors and likelihood ratios come out right.
    """

    def __init__(self, loc, scale, low, high, validate_args=False, allow_nan_stats=True, name="CensoredNormal"):
        parameters = dict(locals())
        with tf.name_scope(name) as name:
            dtype = tf.convert_to_tensor(loc).dtype
            self._loc = tf.convert_to_tensor(loc, dtype)
            self._scale = tf.convert_to_tensor(scale, dtype)
            self._low = tf.convert_to_tensor(low, dtype)
            self._high = tf.convert_to_tensor(high, dtype)
            super().__init__(
                dtype=dtype,
                reparameterization_type=tfd.NOT_REPARAMETERIZED,
                validate_args=validate_args,
                allow_nan_stats=allow_nan_stats,
                parameters=parameters,
                name=name,
            )

    @classmethod
    def _parameter_properties(cls, dtype, num_classes=None):
        return dict(
            loc=tfp.util.ParameterProperties(),
            scale=tfp.util.ParameterProperties(),
            low=tfp.util.ParameterProperties(),
            high=tfp.util.ParameterProperties(),
        )

    def _event_shape(self):
        return tf.TensorShape([])

    def _event_shape_tensor(self):
        return tf.constant([], tf.int32)

    def _normal(self):
        return tfd.Normal(self._loc, self._scale)

    def _sample_n(self, n, seed=None):
        return tf.clip_by_value(self._normal().sample(n, seed=seed), self._low, self._high)

    def _log_prob(self, x):
        normal = self._normal()
        inside = normal.log_prob(x)
        upper = tf.where(x >= self._high, normal.log_survival_function(self._high), inside)
        return tf.where(x <= self._low, normal.log_cdf(self._low), upper)


def log_utility(rho, alpha, z):
    """log U(z) = (1 / rho) log sum_i alpha_i z_i^rho, in log space so that small rho stays finite.

    rho: [..., 1], alpha: [..., K] (leading dims broadcast against z's), z: [..., n, K] -> [..., n].
    """
    log_z = tf.math.log(tf.maximum(z, 1e-6))
    return tf.reduce_logsumexp(tf.math.log(alpha)[..., None, :] + rho[..., None, :] * log_z, -1) / rho


class CESTask(Task):
    """Constant elasticity of substitution: two baskets of three goods, a censored utility rating.

    Parameters: rho, alpha_1..3 (a point of the simplex), log_u; designs: x = (z, z') / 100 in [0, 1]^6.
    """

    name = "ces"
    x_dim = 2 * GOODS
    y_dim = 1
    outcome = "continuous"
    parameter_names = ("rho", "alpha_1", "alpha_2", "alpha_3", "log_u")
    parameter_groups = {"rho": (0,), "alpha": (1, 2, 3), "u": (4,)}
    input_names = tuple(f"{b}{i + 1}" for b in ("z", "zprime") for i in range(GOODS))
    Options = CESOptions

    def __init__(self, options: CESOptions | None = None):
        self.options = options or CESOptions()

    def prior(self) -> tfd.Distribution:
        """p(theta): Beta(1, 1) x Dirichlet(1, 1, 1) x Normal(1, 3) side by side, event [5]."""
        one = tf.constant(1.0, self.dtype)
        return tfd.Blockwise([tfd.Beta(one, 1.0), tfd.Dirichlet(tf.ones([GOODS], self.dtype)), tfd.Normal(one, 3.0)])

    def design_distribution(self, num_designs: int) -> tfd.Distribution:
        """Both baskets uniform on [0, 100]^3 (in units of 100): event [n, 6]."""
        box = tfd.Uniform(tf.zeros([num_designs, 2 * GOODS], self.dtype), tf.ones([num_designs, 2 * GOODS], self.dtype))
        return tfd.Independent(box, reinterpreted_batch_ndims=2)

    def likelihood(self, theta, x) -> tfd.Distribution:
        """The clipped utility difference eta: theta [..., 5], x [..., n, 6] -> batch [..., n]."""
        o = self.options
        theta, x = tf.cast(theta, self.dtype), tf.cast(x, self.dtype)
        rho = tf.clip_by_value(theta[..., :1], 1e-6, 1.0)
        alpha = tf.maximum(theta[..., 1 : 1 + GOODS], 1e-12)
        u = tf.exp(theta[..., -1:])  # [..., 1]
        z, z2 = BASKET_SCALE * x[..., :GOODS], BASKET_SCALE * x[..., GOODS:]
        diff = tf.exp(log_utility(rho, alpha, z)) - tf.exp(log_utility(rho, alpha, z2))  # [..., n]
        scale = u * o.tau * (1.0 + tf.norm(z - z2, axis=-1))
        edge = math.log(o.epsilon / (1.0 - o.epsilon))  # logit(eps) < 0
        return CensoredNormal(u * diff, scale, tf.constant(edge, self.dtype), tf.constant(-edge, self.dtype))
