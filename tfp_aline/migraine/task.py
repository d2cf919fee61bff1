"""The migraine model as one TFP joint distribution."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.errors import ConfigError
from tfp_aline.migraine.feature_table import FeatureTable, read_feature_table, resolve_data_path
from tfp_aline.tasks.base import EvaluationMethod, Task

tfd = tfp.distributions

BASELINE_NAME = "Baseline (logit)"


@dataclasses.dataclass(frozen=True)
class MigraineModelConfig:
    """Settings of the migraine model that the feature table does not give.

    correlation:     rho in C_jk = rho (s_j r_j)(s_k r_k); must lie in [0, 1) so C is positive definite
    weight_scale:    c in beta_pop = c * s * r / sum(r)  (logit change per SD of a factor)
    weight_spread:   tau_w, prior std of a person's weights around beta_pop
    baseline_spread: tau_b, prior std of a person's baseline logit around b0
    base_rate:       population share of migraine days; b0 is solved so that the model matches it
    """

    correlation: float = 0.3
    weight_scale: float = 4.0
    weight_spread: float = 0.3
    baseline_spread: float = 0.5
    base_rate: float = 0.15

    def __post_init__(self):
        checks = {
            "correlation": 0.0 <= self.correlation < 1.0,
            "weight_scale": self.weight_scale >= 0.0,
            "weight_spread": self.weight_spread > 0.0,
            "baseline_spread": self.baseline_spread > 0.0,
            "base_rate": 0.0 < self.base_rate < 1.0,
        }
        expected = {
            "correlation": "in [0, 1)",
            "weight_scale": ">= 0",
            "weight_spread": "> 0",
            "baseline_spread": "> 0",
            "base_rate": "in (0, 1)",
        }
        for key, ok in checks.items():
            if not ok:
                raise ConfigError(f"task.{key} = {getattr(self, key)!r}: expected a number {expected[key]}")


@dataclasses.dataclass(frozen=True)
class MigraineOptions(MigraineModelConfig):
    """The migraine task's config section: the feature table (and sheet) and the model settings
    of `MigraineModelConfig` (range-checked at config load, naming the key)."""

    table: str = "data/migraine_prediction.xlsx"
    sheet: typing.Optional[str] = None

    def model_config(self) -> MigraineModelConfig:
        fields = (f.name for f in dataclasses.fields(MigraineModelConfig))
        return MigraineModelConfig(**{k: getattr(self, k) for k in fields})


def signed_correlation(relevance, direction, rho):
    """C = rho * v v^T with unit diagonal, v = s * r: risk factors co-occur in their risk direction.

    C = diag(1 - rho r^2) + rho v v^T is positive definite for rho in [0, 1) and r in [0, 1];
    the Cholesky factorisation below checks it anyway.
    """
    v = np.asarray(direction, float) * np.asarray(relevance, float)
    corr = rho * np.outer(v, v)
    np.fill_diagonal(corr, 1.0)
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise ConfigError(
            f"model.correlation = {rho}: the feature correlation matrix is not positive definite"
        ) from None
    return corr


def solve_baseline(beta_pop, corr, tau_w, tau_b, base_rate, num_draws=4096):
    """b0 such that the population share of migraine days equals `base_rate`.

    Given w, z.w + b ~ Normal(b0, w^T C w + tau_b^2) exactly, so the rate is an expectation over
    w (fixed draws) of a 1-D Gaussian integral (Gauss-Hermite), solved for b0 by bisection.
    """
    rng = np.random.default_rng(12345)  # fixed: b0 must not depend on the run's seed
    w = beta_pop + tau_w * rng.standard_normal((num_draws, len(beta_pop)))
    scale = np.sqrt(np.einsum("nd,de,ne->n", w, corr, w) + tau_b**2)
    nodes, weights = np.polynomial.hermite_e.hermegauss(64)
    weights = weights / weights.sum()

    def rate(b0):
        logits = b0 + scale[:, None] * nodes[None, :]
        return float(np.mean(1.0 / (1.0 + np.exp(-logits)) @ weights))

    lo, hi = -30.0, 30.0
    for _ in range(100):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if rate(mid) < base_rate else (lo, mid)
    return 0.5 * (lo + hi)


class MigraineTask(Task):
    """Person parameters theta = (w_1..w_D, b); days z ~ MVN(0, C); y ~ Bernoulli(z.w + b).

    Inputs are day features in standardised units ([.., D]); theta has L = D + 1 entries, the
    last being the baseline logit. Parameter groups are the table's categories plus 'baseline'.
    """

    name = "migraine"
    y_dim = 1
    outcome = "binary"
    Options = MigraineOptions

    @staticmethod
    def _table(options: MigraineOptions) -> FeatureTable:
        return read_feature_table(resolve_data_path(options.table), sheet=options.sheet)

    @classmethod
    def from_options(cls, options: MigraineOptions) -> MigraineTask:
        return cls(cls._table(options), options.model_config())

    @classmethod
    def group_names(cls, options: MigraineOptions) -> tuple[str, ...]:
        """The table's categories and 'baseline', without building the prior."""
        return (*cls._table(options).groups, "baseline")

    @classmethod
    def parameter_names_of(cls, options: MigraineOptions) -> tuple[str, ...]:
        """The table's variable names and the baseline's, without building the prior."""
        return (*cls._table(options).names, BASELINE_NAME)

    def __init__(self, table: FeatureTable | None = None, config: MigraineModelConfig | None = None, dtype=tf.float32):
        self.table = table if table is not None else read_feature_table()
        self.feature_table = self.table
        self.config = config if config is not None else MigraineModelConfig()
        self.dtype = dtype
        t, c = self.table, self.config
        self.x_dim = t.num_features
        self.parameter_names = tuple(t.names) + (BASELINE_NAME,)
        self.parameter_groups = dict(t.groups, baseline=(t.num_features,))
        self.correlation = signed_correlation(t.relevance, t.direction, c.correlation)
        self.beta_pop = c.weight_scale * t.direction * t.relevance / t.relevance.sum()
        self.b0 = solve_baseline(self.beta_pop, self.correlation, c.weight_spread, c.baseline_spread, c.base_rate)
        self._chol = tf.constant(np.linalg.cholesky(self.correlation), dtype)

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(self.table.names)

    @property
    def prior_mean(self) -> np.ndarray:
        """[L] prior mean of theta = (beta_pop, b0)."""
        return np.append(self.beta_pop, self.b0)

    @property
    def prior_std(self) -> np.ndarray:
        """[L] prior std of theta."""
        c = self.config
        return np.append(np.full(self.x_dim, c.weight_spread), c.baseline_spread)

    def prior(self) -> tfd.Distribution:
        """p(theta), theta = (w, b): independent normals, event [D + 1]."""
        dt = self.dtype
        return tfd.Independent(tfd.Normal(tf.constant(self.prior_mean, dt), tf.constant(self.prior_std, dt)), 1)

    def design_distribution(self, num_designs: int) -> tfd.Distribution:
        """Days z ~ MVN(0, C), event [n, D]."""
        return tfd.Sample(tfd.MultivariateNormalTriL(tf.zeros([self.x_dim], self.dtype), self._chol), num_designs)

    def likelihood(self, theta, x) -> tfd.Distribution:
        """y ~ Bernoulli(z . w + b): theta [..., D + 1], x [..., n, D] -> batch [..., n]."""
        return tfd.Bernoulli(logits=self.outcome_logits(theta, x), dtype=self.dtype)

    # The task's own joint distribution names w and b apart (the mock distribution and the
    # notebooks read them); sampling and the log posterior below follow it, so the random
    # streams of shipped runs are unchanged. It agrees with the generic route of `Task`
    # (a test checks the log posterior and the episode distribution).
    def joint_distribution(self, num_days: int, day_mask=None) -> tfd.JointDistributionNamed:
        """p(w, b, z_{1:n}, y_{1:n}) for one person and n days.

        Sampled with a sample shape [B], parts have shapes w [B, D], b [B], z [B, n, D],
        y [B, n]. `day_mask` ([.., n] bool) drops masked days from the likelihood.
        """
        c, dt = self.config, self.dtype

        def outcome(z, b, w):
            day = tfd.Bernoulli(logits=tf.linalg.matvec(z, w) + b[..., None], dtype=dt)
            if day_mask is not None:
                day = tfd.Masked(day, validity_mask=day_mask)
            return tfd.Independent(day, reinterpreted_batch_ndims=1)

        return tfd.JointDistributionNamed(
            dict(
                w=tfd.Independent(tfd.Normal(tf.constant(self.beta_pop, dt), tf.constant(c.weight_spread, dt)), 1),
                b=tfd.Normal(tf.constant(self.b0, dt), tf.constant(c.baseline_spread, dt)),
                z=tfd.Sample(tfd.MultivariateNormalTriL(tf.zeros([self.x_dim], dt), self._chol), num_days),
                y=outcome,
            )
        )

    @staticmethod
    def split_theta(theta):
        """theta [..., D + 1] -> (w [..., D], b [...])."""
        return theta[..., :-1], theta[..., -1]

    def sample_joint(self, batch_size: int, num_designs: int, seed):
        """(theta, z, y) from the named joint (w, b, z, y): theta [B, L], z [B, n, D], y [B, n].
        `Task.sample_episodes` splits it into context, pool and targets."""
        s = self.joint_distribution(num_designs).sample(batch_size, seed=seed)
        return tf.concat([s["w"], s["b"][:, None]], axis=-1), s["z"], s["y"]

    def sample_prior(self, batch_size: int, seed):
        """theta ~ p(theta): [B, L]. Kept (the base samples `prior()`): the named joint splits the
        seed between w and b, so only this keeps the prior draws of shipped runs."""
        return self.sample_joint(batch_size, 1, seed)[0]

    def outcome_logits(self, theta, x):
        """Logit of a migraine on each day: theta [..., L], x [..., n, D] -> [..., n]."""
        w, b = self.split_theta(theta)
        return tf.linalg.matvec(x, w) + b[..., None]

    # Kept, not the base's: both go through the named joint, whose seed split gives other draws
    # than the generic likelihood, and whose sum in another order differs from the generic log
    # posterior in float32 rounding (~1e-6); the shipped runs' numbers depend on them.
    def simulate_outcomes(self, theta, x, seed):
        w, b = self.split_theta(tf.convert_to_tensor(theta, self.dtype))
        jd = self.joint_distribution(x.shape[-2])
        return jd.sample(seed=seed, w=w, b=b, z=x)["y"][..., None]

    def log_posterior(self, theta, x, y, mask=None):
        w, b = self.split_theta(theta)
        # A traced caller may not know the number of days (the advice service's check).
        num_days = x.shape[-2] if x.shape[-2] is not None else tf.shape(x)[-2:-1]
        jd = self.joint_distribution(num_days, day_mask=mask)
        parts = jd.log_prob_parts(dict(w=w, b=b, z=x, y=y[..., 0]))
        return parts["w"] + parts["b"] + parts["y"]

    # ---- what evaluation asks: a Laplace reference (checked against NUTS) and greedy EIG/EPIG
    reference_name = "Laplace"

    def reference_samples(self, context_x, context_y, context_mask, num_samples, seed):
        from tfp_aline.core.exact import laplace_posterior

        q = laplace_posterior(self, context_x, context_y, context_mask)
        return q.sample(num_samples, seed=seed).numpy()

    def reference_mean(self, context_x, context_y, context_mask, seed):
        from tfp_aline.core.exact import laplace_posterior

        return laplace_posterior(self, context_x, context_y, context_mask).loc.numpy()

    def prior_predictive_probs(self, x, seed):
        from tfp_aline.migraine.gaussian_eig import prior_predictive

        return prior_predictive(self, x)  # closed form: the logit is Gaussian under the prior

    def evaluation_methods(self):
        from tfp_aline.migraine.gaussian_eig import GreedyEIGAcquisition, GreedyEPIGAcquisition

        return {
            "greedy-eig": EvaluationMethod(lambda run: GreedyEIGAcquisition(self), "parameters"),
            "greedy-epig": EvaluationMethod(lambda run: GreedyEPIGAcquisition(self), "predictive"),
        }
