"""Exact reference posteriors for a task: batched NUTS (tfp.mcmc) and a Laplace approximation."""

from __future__ import annotations

import logging
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core import seeds

tfm = tfp.mcmc


class NutsResult(NamedTuple):
    """Posterior draws and diagnostics for P people at once.

    draws:       [S, C, P, L] (S draws per chain, C chains)
    rhat:        [P, L] potential scale reduction (split over chains)
    ess:         [P, L] effective sample size across chains
    step_size:   [P, 1] adapted step size per person
    """

    draws: tf.Tensor
    rhat: tf.Tensor
    ess: tf.Tensor
    step_size: tf.Tensor

    @property
    def flat(self):
        """All draws of all chains: [S * C, P, L]."""
        shape = tf.shape(self.draws)
        return tf.reshape(self.draws, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


_COMPILED_ATTRIBUTE = "_tfp_aline_compiled"  # on the task: {key: compiled graph}, NUTS and Newton per settings


def _compiled(task, key, make):
    """The graph cached on this task object for `key` (`make()` builds it on first use). Kept as
    an attribute of the task, so it lives and dies with the task: no id() that a later task could
    reuse, and no module-level table that keeps every task ever used alive."""
    graphs = vars(task).setdefault(_COMPILED_ATTRIBUTE, {})
    if key not in graphs:
        graphs[key] = make()
    return graphs[key]


def _quietly(fn, *args, **kwargs):
    """fn(*args, **kwargs) with TensorFlow's Python warnings held back. TFP's FFT-based
    autocorrelation casts complex64 to float32 on purpose, and TensorFlow warns about it on
    every call: a line per NUTS run that says nothing about the run."""
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return fn(*args, **kwargs)
    finally:
        logger.setLevel(level)


def nuts_posterior(
    task,
    x,
    y,
    mask=None,
    init=None,
    num_chains: int = 4,
    num_results: int = 500,
    num_burnin: int = 500,
    seed=(0, 0),
    jit_compile: bool = True,
) -> NutsResult:
    """NUTS on `task.log_posterior` for P people in parallel, with step sizes adapted per person.

    x: [P, n, Dx], y: [P, n, Dy], mask: [P, n] bool or None; init: [P, L] start of every chain or
    [C, P, L] one start per chain (e.g. amortized posterior samples). Default: per person, the C
    most probable of 256 prior draws (`prior_starts`): no Hessian, no Newton step, so any model
    with a prior to sample works, bounded or not, and chains stuck in different modes show in
    R-hat. With a prior box (`task.support`) the chains run in the prior's unconstrained space.
    The log-accept ratio is averaged over chains only, so each person gets its own step size.
    The compiled sampler is cached per (task, shapes, settings): later calls do not retrace.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    mask = tf.ones(tf.shape(x)[:2], tf.bool) if mask is None else tf.cast(tf.convert_to_tensor(mask), tf.bool)
    if init is None:
        state = prior_starts(task, x, y, mask, num_chains, seed)
    else:
        state = tf.convert_to_tensor(init, x.dtype)
        if state.shape.rank == 2:
            state = tf.tile(state[None], [num_chains, 1, 1])
    key = ("nuts", tuple(x.shape), tuple(y.shape), num_chains, num_results, num_burnin, jit_compile)
    run = _compiled(
        task,
        key,
        lambda: tf.function(
            lambda a, b, m, s0, sd: _sample_nuts(task, a, b, m, s0, sd, num_results, num_burnin),
            jit_compile=jit_compile,
        ),
    )
    draws, step = run(x, y, mask, state, tf.constant(seed, tf.int32))
    rhat = tfm.potential_scale_reduction(draws, independent_chain_ndims=1, split_chains=True)
    ess = _quietly(tfm.effective_sample_size, draws, cross_chain_dims=1)
    return NutsResult(draws, rhat, ess, step[-1])


def _sample_nuts(task, x, y, mask, state, seed, num_results: int, num_burnin: int):
    """The NUTS chains from `state` [C, P, L]: (draws [S, C, P, L], step sizes [S, P, 1]).

    Warm-up in two halves. The first adapts the step size alone; the second runs in coordinates
    shifted and scaled per person and parameter by the mean and sd of the first half's last
    draws (a diagonal mass matrix, pooled over chains), adapts the step size again, and the
    draws follow. Posteriors whose parameters differ in scale by orders of magnitude (a choice
    noise against a discount rate) then mix as well as a round one. Each chain keeps its own
    state between the halves, so chains in different modes stay apart and show in R-hat."""

    def target(theta):  # [C, P, L] -> [C, P]
        return task.log_posterior(theta, x, y, mask)

    tfb = tfp.bijectors
    people = tf.shape(x)[0]
    space = task.prior().experimental_default_event_space_bijector() if task.support is not None else tfb.Identity()
    first, second = num_burnin // 2, num_burnin - num_burnin // 2
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 2))

    def chains(bijector, start, n_results, n_burnin, s):
        sampler = tfm.NoUTurnSampler(target, step_size=tf.fill([people, 1], tf.constant(0.1, x.dtype)))
        sampler = tfm.TransformedTransitionKernel(sampler, bijector)
        kernel = tfm.DualAveragingStepSizeAdaptation(sampler, num_adaptation_steps=int(0.8 * n_burnin))
        return tfm.sample_chain(
            n_results, start, kernel=kernel, num_burnin_steps=n_burnin, seed=s, trace_fn=lambda _, r: r.new_step_size
        )

    pilot, _ = chains(space, state, first, 0, seeds[0])  # [first, C, P, L]; the step size adapts throughout
    u = space.inverse(pilot[first // 2 :])  # the pilot's second half, unconstrained
    loc = tf.reduce_mean(u, [0, 1])  # [P, L]
    scale = tf.maximum(tf.math.reduce_std(u, [0, 1]), tf.constant(1e-6, x.dtype))
    whitened = tfb.Chain([space, tfb.Shift(loc), tfb.Scale(scale)])
    return chains(whitened, pilot[-1], num_results, second, seeds[1])


def prior_starts(task, x, y, mask, num_chains: int, seed, num_draws: int = 256):
    """Chain starts [C, P, L]: per person, the C of `num_draws` prior draws with the highest
    log posterior. Needs only prior samples and `log_posterior`, never a Hessian, and the starts
    are spread over the prior, so separate modes are found by separate chains."""
    people = x.shape[0]
    draws = task.sample_prior(num_draws * people, seed=tf.constant([seed[0], seed[1] + seeds.NUTS_STARTS], tf.int32))
    draws = tf.reshape(tf.cast(draws, x.dtype), [num_draws, people, -1])  # [K, P, L]
    logp = task.log_posterior(draws, x, y, mask)  # [K, P]
    logp = tf.where(tf.math.is_nan(logp), tf.constant(-float("inf"), logp.dtype), logp)
    best = tf.math.top_k(tf.transpose(logp), num_chains).indices  # [P, C]
    return tf.transpose(tf.gather(tf.transpose(draws, [1, 0, 2]), best, batch_dims=1), [1, 0, 2])


# Vehtari et al. (2021), "Rank-normalization, folding, and localization": R-hat below 1.01 and
# at least 100 effective draws per chain before the draws are trusted.
RHAT_MAX = 1.01
ESS_PER_CHAIN = 100


def unconverged(result: NutsResult, rhat_max: float = RHAT_MAX, min_ess: float | None = None):
    """People whose chains did not converge: [P] bool, any parameter with R-hat > rhat_max or
    ESS < min_ess (default 100 per chain, at most half the draws)."""
    import numpy as np

    rhat, ess = np.asarray(result.rhat), np.asarray(result.ess)
    return np.any(~(rhat <= rhat_max) | ~(ess >= _min_ess(result, min_ess)), axis=-1)


def _min_ess(result: NutsResult, min_ess: float | None) -> float:
    if min_ess is not None:
        return float(min_ess)
    draws, chains = int(result.draws.shape[0]), int(result.draws.shape[1])
    return float(min(ESS_PER_CHAIN * chains, 0.5 * draws * chains))


def convergence_message(
    result: NutsResult, parameter_names, what: str = "NUTS", rhat_max: float = RHAT_MAX, min_ess=None, shown: int = 8
):
    """One line naming the unconverged people and, for each, its worst parameter with R-hat and
    ESS; None when every person converged. `shown` people are named, the rest counted."""
    import numpy as np

    bad = np.flatnonzero(unconverged(result, rhat_max, min_ess))
    if not len(bad):
        return None
    rhat, ess = np.asarray(result.rhat), np.asarray(result.ess)
    floor = _min_ess(result, min_ess)
    parts = []
    for p in bad[:shown]:
        r = np.where(np.isnan(rhat[p]), np.inf, rhat[p])
        worst = int(np.argmax(r)) if r.max() > rhat_max else int(np.argmin(np.nan_to_num(ess[p], nan=-1.0)))
        parts.append(f"person {p} ({parameter_names[worst]}: R-hat {rhat[p, worst]:.3g}, ESS {ess[p, worst]:.0f})")
    more = f" and {len(bad) - shown} more" if len(bad) > shown else ""
    return (
        f"{what} did not converge for {len(bad)} of {rhat.shape[0]} people (R-hat > {rhat_max} or "
        f"ESS < {floor:.0f}): " + ", ".join(parts) + more
    )


def warn_unconverged(result: NutsResult, parameter_names, what: str = "NUTS", **kwargs):
    """Check R-hat and ESS of every person; one `ConvergenceWarning` line if any did not
    converge. Returns the [P] bool mask of those people."""
    import warnings

    from tfp_aline.errors import ConvergenceWarning

    message = convergence_message(result, parameter_names, what, **kwargs)
    if message:
        warnings.warn(message, ConvergenceWarning, stacklevel=2)
    return unconverged(result, kwargs.get("rhat_max", RHAT_MAX), kwargs.get("min_ess"))


def _newton_mode(task, x, y, mask, num_steps: int):
    """Damped Newton iterations to the posterior mode, as one graph loop: ([P, L], [P, L, L] Hessian)."""

    def grad_hess(th):
        with tf.GradientTape() as outer:
            outer.watch(th)
            with tf.GradientTape() as inner:
                inner.watch(th)
                lp = task.log_posterior(th, x, y, mask)
            g = inner.gradient(lp, th)
        return lp, g, outer.batch_jacobian(g, th)  # [P], [P, L], [P, L, L]

    def body(i, theta):
        lp, g, h = grad_hess(theta)
        step = tf.linalg.solve(-h, g[..., None])[..., 0]
        candidate = theta + step
        # Halve a step that lowers the log posterior (keeps Newton safe far from the mode).
        worse = task.log_posterior(candidate, x, y, mask) < lp
        return i + 1, tf.where(worse[:, None], theta + 0.5 * step, candidate)

    theta = tf.zeros([tf.shape(x)[0], task.num_parameters], x.dtype)
    _, theta = tf.while_loop(lambda i, _: i < num_steps, body, (tf.constant(0), theta))
    return theta, grad_hess(theta)[2]


def laplace_posterior(task, x, y, mask=None, num_steps: int = 30):
    """Gaussian approximation at the posterior mode (damped Newton with the exact Hessian), for P
    people at once in one compiled graph.

    x: [P, n, Dx], y: [P, n, Dy], mask: [P, n] bool or None. Returns `tfd.MultivariateNormalTriL`
    with batch shape [P] and event [L]; its `.loc` is the mode. Newton converges quadratically on
    the log-concave migraine posterior; 30 steps leave it at the mode to float precision.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    mask = tf.ones(tf.shape(x)[:2], tf.bool) if mask is None else tf.cast(mask, tf.bool)
    # One graph per shape: a task may read the number of days from the static shape (migraine
    # does), which a graph traced for several shapes would leave unknown.
    newton = _compiled(
        task,
        ("newton", num_steps, tuple(x.shape), tuple(y.shape)),
        lambda: tf.function(lambda a, b, m: _newton_mode(task, a, b, m, num_steps)),
    )
    theta, h = newton(x, y, mask)
    cov = tf.linalg.inv(-h)
    cov = 0.5 * (cov + tf.linalg.matrix_transpose(cov))
    return tfp.distributions.MultivariateNormalTriL(theta, tf.linalg.cholesky(cov))
