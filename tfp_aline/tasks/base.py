"""The task interface: a Bayesian model given as TFP pieces, and what the package derives from them."""

from __future__ import annotations

import abc
import dataclasses
from typing import Callable, Mapping, NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.episodes import EpisodeBatch
from tfp_aline.core.target_names import PREDICTIVE, check_target_name
from tfp_aline.errors import ConfigError

tfd = tfp.distributions

OUTCOMES = ("binary", "continuous")


class ReferencePosterior(NamedTuple):
    """A task's exact reference posterior of P people's data.

    samples:     [S, P, L] numpy draws
    nuts:        the `NutsResult` (draws [S', C, P, L], R-hat and ESS [P, L]) when the reference is
                 NUTS, else None (grid, Laplace: nothing to converge)
    unconverged: [P] bool, people whose chains failed the R-hat or ESS check (None without MCMC)
    seconds:     wall time of the run
    """

    samples: object
    nuts: object = None
    unconverged: object = None
    seconds: float = float("nan")


class EvaluationMethod(NamedTuple):
    """A non-amortized baseline a task offers: `factory(run)` -> Acquisition, for `targets`
    'parameters' (parameter targets only), 'predictive' (predictive targets only) or 'any'."""

    factory: Callable
    targets: str = "any"


@dataclasses.dataclass(frozen=True)
class NoOptions:
    """A task without settings of its own (its config section holds only `name` or `class`)."""


class Task(abc.ABC):
    """A Bayesian model to run ALINE on, written with TFP.

    A model supplies:
      - `prior()`: p(theta), a `tfd` distribution with event shape [L];
      - `design_distribution(n)`: p(x_1..n), candidate designs, event shape [n, Dx];
      - `likelihood(theta, x)`: p(y | x, theta), batch shape [..., n] over the designs;
      - `parameter_names`, `parameter_groups` (name -> parameter indices), `x_dim`, `outcome`
        ('binary' or 'continuous'), optionally `support` (the prior's box) and `Options` (a
        frozen dataclass: the task's own config section, validated key by key).
    The package derives from them: the joint distribution, episode sampling, the exact log
    posterior, outcome simulation, and a reference posterior for evaluation (batched NUTS unless
    the task has something better, e.g. a grid). Every sampling method takes a stateless seed
    (shape [2] int) so it is reproducible inside `tf.function` and XLA.

    A config names a task by its built-in name (`task: {name: psychometric}`) or by import path
    (`task: {class: mypackage.models:MyTask, option: value}`); see `tasks/registry.py`.

    Writing a subclass
    ------------------
    B is the number of people (episodes) in a batch, n the number of designs each, L the number of
    parameters, Dx = `x_dim`. Every tensor is of `self.dtype` (tf.float32, the networks' dtype).

    1. Class attributes: `name` (a short string), `x_dim`, `outcome`, `parameter_names` (L distinct
       strings, in theta's order) and `parameter_groups` ({group: tuple of indices into theta});
       a config's `targets` name 'all' or groups (give a parameter a group of its own to target
       it alone). Optionally `input_names` (Dx strings, for plots) and a `support` property:
       (low [L], high [L]) when the prior lives in a box, so that posterior draws are clipped to
       it and NUTS runs in the box's unconstrained space; leave it None for an unbounded prior.
    2. Settings: `Options`, a frozen dataclass whose fields (with defaults) are the config keys
       besides `name`/`class`; raise ValueError in its `__post_init__` for a bad value (it is
       shown as one line). `from_options(options)` calls `cls(options)`, so the constructor takes
       the options as its one argument (`def __init__(self, options=None)`). A task without
       settings keeps `NoOptions` and a constructor without arguments.
    3. The three distributions, each a `tfd.Distribution` built fresh on every call:
         prior()                -> sample([B]) is theta [B, L]; log_prob(theta) is [B]. Put
                                   per-parameter distributions in `tfd.Independent(..., 1)` or
                                   `tfd.Blockwise`, so that log_prob sums over the parameters.
         design_distribution(n) -> sample([B]) is x [B, n, Dx].
         likelihood(theta, x)   -> one scalar outcome per design: theta [..., L], x [..., n, Dx]
                                   give batch shape [..., n] and event shape []; do not wrap it in
                                   `tfd.Independent` (the package sums over designs itself).
       The leading dims of theta and x broadcast: NUTS chains and the sPCE bound call the
       likelihood with theta [C, B, L] and x [B, n, Dx], so index theta from the end
       (`theta[..., i]`), never `theta[:, i]`, and never reduce over the batch axes: person i's
       likelihood must depend only on their own theta and x. Binary outcomes are 0/1 (e.g.
       `tfd.Bernoulli(..., dtype=self.dtype)`); continuous ones any real value.
    4. Scale the designs: the network sees x as given, so choose units in which a design is about
       [0, 1] or [-1, 1] (or standardised), as `examples/ces.py` divides its baskets by 100, and
       convert back inside `likelihood`. Raw units in the hundreds slow or stall training.
    5. Everything else is derived: `joint_distribution`, `sample_prior`, `sample_episodes`,
       `simulate_outcomes`, `log_likelihood`, `log_posterior`, `outcome_probs` (binary: from the
       Bernoulli's probs) and the NUTS `reference_samples`. Override one only for speed or an
       exact alternative (a grid reference, a closed-form outcome probability), keeping its shapes.
       Code in these methods runs inside `tf.function` during training: TensorFlow ops only, no
       `.numpy()`, no Python `if` on tensor values, and randomness only through the given seed.

    Check a task before a long run; each problem found is one line naming the method, what it
    gave and what was expected:

        import tfp_aline
        print(tfp_aline.check_task(MyTask(MyTask.Options())))  # [] when the task is sound

    `examples/location_finding.py` is a complete task of about fifty lines.
    """

    name: str
    x_dim: int
    y_dim: int = 1
    outcome: str = "binary"
    parameter_names: tuple[str, ...]
    parameter_groups: Mapping[str, tuple[int, ...]]
    Options = NoOptions
    dtype = tf.float32
    feature_table = None  # a table of raw-unit inputs (names, units, standardisation), if the task has one

    @classmethod
    def from_options(cls, options) -> Task:
        """The task for a validated `Options` instance (the config's task section)."""
        return cls() if cls.Options is NoOptions else cls(options)

    # ---- what a model supplies ------------------------------------------------------------
    @abc.abstractmethod
    def prior(self) -> tfd.Distribution:
        """p(theta): event shape [L]."""

    @abc.abstractmethod
    def design_distribution(self, num_designs: int) -> tfd.Distribution:
        """p(x_1..n): event shape [n, Dx] (candidate designs, initial context, predictive targets)."""

    @abc.abstractmethod
    def likelihood(self, theta, x) -> tfd.Distribution:
        """p(y | x, theta) of each design: theta [..., L], x [..., n, Dx] -> batch shape [..., n]."""

    # ---- names and metadata ---------------------------------------------------------------
    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the Dx input columns (for plots and tables)."""
        return tuple(f"x{i}" for i in range(self.x_dim))

    @property
    def support(self):
        """The prior's box, (low [L], high [L]) numpy arrays, or None when theta is unbounded
        (used to clip posterior samples, as the paper's RMSE does, and to lay out grids)."""
        return None

    @property
    def num_parameters(self) -> int:
        return len(self.parameter_names)

    def parameter_indices(self, target=None) -> tuple[int, ...]:
        """Parameter indices for a target: None or 'all', a group name, a parameter name,
        or a sequence of indices/names."""
        if target is None or (isinstance(target, str) and target == "all"):
            return tuple(range(self.num_parameters))
        if isinstance(target, str):
            check_target_name(target, self.parameter_groups, self.parameter_names, where=f"task {self.name!r}: ")
            if target == PREDICTIVE:
                raise ConfigError("target 'predictive' names the predictive points, not parameters")
            if target in self.parameter_groups:
                return tuple(self.parameter_groups[target])
            return (self.parameter_names.index(target),)
        out = []
        for t in target:
            if isinstance(t, str):
                out.extend(self.parameter_indices(t))
            elif isinstance(t, int) and 0 <= t < self.num_parameters:
                out.append(int(t))
            else:
                raise ConfigError(f"parameter index {t!r} out of range 0..{self.num_parameters - 1}")
        if not out or len(set(out)) != len(out):
            raise ConfigError(f"target {target!r} must name distinct parameters")
        return tuple(out)

    @classmethod
    def group_names(cls, options) -> tuple[str, ...]:
        """The parameter groups a config may name as targets, from the options alone. The default
        builds the task; a task whose construction is costly can answer more cheaply."""
        return tuple(cls.from_options(options).parameter_groups)

    @classmethod
    def parameter_names_of(cls, options) -> tuple[str, ...]:
        """The parameter names (each a target of its own), from the options alone. The default is
        the class's `parameter_names` if it has them, else the built task's."""
        names = getattr(cls, "parameter_names", None)  # a class attribute, or only an annotation
        return tuple(names) if names is not None else tuple(cls.from_options(options).parameter_names)

    @classmethod
    def check_predictive(cls, num_predictive_targets: int):
        """Predictive targets need a binary outcome: the predictive head is a Bernoulli."""
        if num_predictive_targets and cls.outcome != "binary":
            raise ConfigError(
                f"task {cls.name!r} has {cls.outcome} outcomes: predictive targets "
                "(episodes.num_predictive_targets > 0, target 'predictive') need a binary "
                "outcome until a continuous predictive head exists; use parameter targets"
            )

    # ---- derived from the TFP pieces ------------------------------------------------------
    def joint_distribution(self, num_designs: int, mask=None) -> tfd.JointDistributionNamed:
        """p(theta, x_1..n, y_1..n); sampled with shape [B]: theta [B, L], x [B, n, Dx], y [B, n].

        `mask` ([..., n] bool) drops masked designs from the likelihood.
        """

        def outcome(x, theta):
            y = self.likelihood(theta, x)
            if mask is not None:
                y = tfd.Masked(y, validity_mask=mask)
            return tfd.Independent(y, reinterpreted_batch_ndims=1)

        return tfd.JointDistributionNamed(dict(theta=self.prior(), x=self.design_distribution(num_designs), y=outcome))

    def sample_prior(self, batch_size: int, seed):
        """theta ~ p(theta): [B, L]."""
        return self.prior().sample(batch_size, seed=seed)

    def sample_joint(self, batch_size: int, num_designs: int, seed):
        """(theta, x, y) ~ p(theta, x_1..n, y_1..n): theta [B, L], x [B, n, Dx], y [B, n]."""
        s = self.joint_distribution(num_designs).sample(batch_size, seed=seed)
        return s["theta"], s["x"], s["y"]

    def sample_episodes(
        self, batch_size: int, num_candidates: int, seed, num_initial_context: int = 0, num_predictive_targets: int = 0
    ) -> EpisodeBatch:
        """Draw B episodes: theta ~ p(theta), a pool of N candidates with their outcomes,
        N0 initial context points and M predictive targets, all for the same theta."""
        n0, n, m = num_initial_context, num_candidates, num_predictive_targets
        theta, x, y = self.sample_joint(batch_size, n0 + n + m, seed)
        y = tf.cast(y, self.dtype)[..., None]
        return EpisodeBatch(
            theta=theta,
            context_x=x[:, :n0],
            context_y=y[:, :n0],
            query_x=x[:, n0 : n0 + n],
            query_y=y[:, n0 : n0 + n],
            target_x=x[:, n0 + n :],
            target_y=y[:, n0 + n :],
        )

    def simulate_outcomes(self, theta, x, seed):
        """y ~ p(y | x, theta); theta: [B, L], x: [B, n, Dx] -> y: [B, n, Dy]."""
        theta = tf.convert_to_tensor(theta, self.dtype)
        return tf.cast(self.likelihood(theta, x).sample(seed=seed), self.dtype)[..., None]

    def log_likelihood(self, theta, x, y, mask=None):
        """log p(D | theta) = sum_i mask_i log p(y_i | x_i, theta); shapes as `log_posterior`'s -> [..., B]."""
        log_lik = self.likelihood(theta, x).log_prob(tf.cast(y[..., 0], self.dtype))
        if mask is not None:
            log_lik = tf.where(tf.cast(mask, tf.bool), log_lik, tf.zeros_like(log_lik))
        return tf.reduce_sum(log_lik, -1)

    def log_posterior(self, theta, x, y, mask=None):
        """Unnormalised log p(theta | D) = log p(theta) + sum_i mask_i log p(y_i | x_i, theta).

        theta: [..., B, L] (leading dims, e.g. MCMC chains, broadcast), x: [B, n, Dx],
        y: [B, n, Dy], mask: [B, n] bool or None -> [..., B].
        """
        return self.prior().log_prob(theta) + self.log_likelihood(theta, x, y, mask)

    def outcome_probs(self, theta, x):
        """p(y = 1 | x, theta) of a binary outcome: theta [..., L], x [..., n, Dx] -> [..., n]."""
        return self.likelihood(theta, x).probs_parameter()

    # ---- what evaluation asks -------------------------------------------------------------
    reference_name = "NUTS"

    def reference_samples(self, context_x, context_y, context_mask, num_samples: int, seed):
        """Samples [S, B, L] of the exact posterior of each episode's context (the reference the
        amortized posterior is checked against). Default: batched NUTS on `log_posterior`
        (in the prior's unconstrained space when the prior has a box), R-hat and ESS checked
        with one warning line naming the people that did not converge."""
        return self._nuts_reference(context_x, context_y, context_mask, num_samples, seed).samples

    def reference_posterior(self, context_x, context_y, context_mask, num_samples: int, seed) -> ReferencePosterior:
        """`reference_samples` with what evaluation needs beside them: the NUTS run and the people
        that did not converge (default NUTS reference), or just the samples (a task that overrides
        `reference_samples` with a grid or Laplace)."""
        import time

        if type(self).reference_samples is not Task.reference_samples:
            start = time.perf_counter()
            samples = self.reference_samples(context_x, context_y, context_mask, num_samples, seed)
            return ReferencePosterior(samples, seconds=time.perf_counter() - start)
        return self._nuts_reference(context_x, context_y, context_mask, num_samples, seed)

    def _nuts_reference(self, context_x, context_y, context_mask, num_samples: int, seed) -> ReferencePosterior:
        import time

        import numpy as np

        from tfp_aline.core.exact import nuts_posterior, warn_unconverged

        # At least 500 draws per chain after 500 of warm-up, whatever num_samples asks: with
        # fewer, R-hat and ESS of a correlated or curved posterior are too noisy to judge
        # convergence by (and two runs on the same data disagree); the draws are thinned evenly.
        chains = 4
        draws = max(-(-num_samples // chains), 500)
        seed = tuple(int(v) for v in np.asarray(seed).ravel()[:2])
        start = time.perf_counter()
        nuts = nuts_posterior(
            self, context_x, context_y, context_mask, num_chains=chains, num_results=draws, num_burnin=500, seed=seed
        )
        seconds = time.perf_counter() - start
        bad = warn_unconverged(nuts, self.parameter_names, what=f"the NUTS reference of task {self.name!r}")
        flat = nuts.flat.numpy()
        keep = (
            np.linspace(0, len(flat) - 1, num_samples).round().astype(int) if num_samples < len(flat) else slice(None)
        )
        return ReferencePosterior(np.asarray(flat[keep]), nuts, bad, seconds)

    def reference_mean(self, context_x, context_y, context_mask, seed):
        """Mean [B, L] of the reference posterior (default: of 1000 `reference_samples`)."""
        return self.reference_samples(context_x, context_y, context_mask, 1000, seed).mean(0)

    def prior_predictive_probs(self, x, seed):
        """p(y = 1 | x) under the prior alone (the 'knows nothing' reference for binary outcomes):
        x [B, M, Dx] -> [B, M]. Default: Monte Carlo over 4000 prior draws."""
        theta = self.sample_prior(4000, seed=seed)  # [S, L]
        probs = self.outcome_probs(theta[:, None, :], tf.cast(x, self.dtype)[None])  # [S, B, M]
        return tf.reduce_mean(probs, 0).numpy()

    def evaluation_methods(self) -> dict:
        """Non-amortized baselines this task offers beyond policy, random and uncertainty sampling:
        {name: EvaluationMethod}. Default: none."""
        return {}
