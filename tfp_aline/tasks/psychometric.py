"""The four-parameter psychometric model of the paper's check (DESIGN.md section 6), as a TFP joint distribution."""
from __future__ import annotations

import math

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.episodes import EpisodeBatch
from tfp_aline.tasks.base import Task

tfd = tfp.distributions

# (name, low, high) of each parameter's uniform prior, in theta order.
PRIOR_BOUNDS = (("threshold", -3.0, 3.0), ("slope", 0.1, 2.0), ("guess", 0.1, 0.9), ("lapse", 0.0, 0.5))
STIMULUS_RANGE = (-5.0, 5.0)


def response_probability(theta, x):
    """p(y = 1 | x, theta) = lapse * guess + (1 - lapse) * (1 - exp(-10^z)), z = (x - threshold) / slope.

    theta: [..., 4], x: [..., n] -> [..., n].
    """
    threshold, slope, guess, lapse = (theta[..., i:i + 1] for i in range(4))
    # Clipping z keeps 10^z finite in float32 (and its gradient defined) without changing F:
    # F is already 0 or 1 to float precision outside |z| < 2.
    z = tf.clip_by_value((x - threshold) / slope, -30.0, 30.0)
    f = -tf.math.expm1(-tf.exp(z * math.log(10.0)))
    return lapse * guess + (1.0 - lapse) * f


class PsychometricTask(Task):
    """theta = (threshold, slope, guess, lapse) with uniform priors; stimuli x ~ U[-5, 5]; binary y.

    Groups: 'threshold_slope' and 'guess_lapse' (the paper's two targets), plus each parameter.
    """

    name = "psychometric"
    x_dim = 1
    y_dim = 1
    outcome_type = "binary"
    parameter_names = tuple(n for n, _, _ in PRIOR_BOUNDS)
    parameter_groups = {"threshold_slope": (0, 1), "guess_lapse": (2, 3)}
    input_names = ("stimulus",)

    def __init__(self, dtype=tf.float32):
        self.dtype = dtype
        self.low = tf.constant([lo for _, lo, _ in PRIOR_BOUNDS], dtype)
        self.high = tf.constant([hi for _, _, hi in PRIOR_BOUNDS], dtype)

    @property
    def support(self):
        return self.low.numpy(), self.high.numpy()

    def prior(self) -> tfd.Distribution:
        """p(theta) as one event of shape [4] (independent uniforms)."""
        return tfd.Independent(tfd.Uniform(self.low, self.high), reinterpreted_batch_ndims=1)

    def joint_distribution(self, num_trials: int, trial_mask=None) -> tfd.JointDistributionNamed:
        """p(theta, x_{1:n}, y_{1:n}); sampled with shape [B]: theta [B, 4], x [B, n], y [B, n].

        `trial_mask` ([.., n] bool) drops masked trials from the likelihood.
        """
        dt = self.dtype

        def outcome(x, theta):
            trial = tfd.Bernoulli(probs=response_probability(theta, x), dtype=dt)
            if trial_mask is not None:
                trial = tfd.Masked(trial, validity_mask=trial_mask)
            return tfd.Independent(trial, reinterpreted_batch_ndims=1)

        return tfd.JointDistributionNamed(dict(
            theta=self.prior(),
            x=tfd.Sample(tfd.Uniform(tf.constant(STIMULUS_RANGE[0], dt), tf.constant(STIMULUS_RANGE[1], dt)),
                         num_trials),
            y=outcome,
        ))

    def sample_prior(self, batch_size: int, seed):
        """theta ~ p(theta): [B, 4]."""
        return self.prior().sample(batch_size, seed=seed)

    def sample_episodes(self, batch_size, num_candidates, seed, num_initial_context=0,
                        num_predictive_targets=0) -> EpisodeBatch:
        n0, n, m = num_initial_context, num_candidates, num_predictive_targets
        s = self.joint_distribution(n0 + n + m).sample(batch_size, seed=seed)
        x, y = s["x"][..., None], s["y"][..., None]
        return EpisodeBatch(
            theta=s["theta"],
            context_x=x[:, :n0], context_y=y[:, :n0],
            query_x=x[:, n0:n0 + n], query_y=y[:, n0:n0 + n],
            target_x=x[:, n0 + n:], target_y=y[:, n0 + n:])

    def outcome_probs(self, theta, x):
        """theta [..., 4], x [..., n, 1] -> p(y = 1) [..., n]."""
        return response_probability(theta, x[..., 0])

    def simulate_outcomes(self, theta, x, seed):
        theta = tf.convert_to_tensor(theta, self.dtype)
        return tfd.Bernoulli(probs=self.outcome_probs(theta, x), dtype=self.dtype).sample(seed=seed)[..., None]

    def log_posterior(self, theta, x, y, mask=None):
        jd = self.joint_distribution(x.shape[-2], trial_mask=mask)
        parts = jd.log_prob_parts(dict(theta=theta, x=x[..., 0], y=y[..., 0]))
        return parts["theta"] + parts["y"]
