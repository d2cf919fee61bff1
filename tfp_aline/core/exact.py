"""Exact reference posteriors for a task: batched NUTS (tfp.mcmc) and a Laplace approximation."""

from __future__ import annotations

import logging
from typing import NamedTuple

import tensorflow as tf
import tensorflow_probability as tfp

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

    x: [P, n, Dx], y: [P, n, Dy], mask: [P, n] bool or None; init: [P, L] start of every chain
    (default: the Laplace mode; for a prior with a box, each chain starts at a different one of
    the most probable of 256 prior draws, so chains stuck in different modes show in R-hat).
    The log-accept ratio is averaged over chains only, so each person gets its own step size.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    people = x.shape[0]
    bounded = task.support is not None
    if init is None and bounded:  # a Newton step may leave the support: start from prior draws
        state = _best_prior_draws(task, x, y, mask, num_chains, seed)
    else:
        if init is None:
            init = laplace_posterior(task, x, y, mask).loc
        state = tf.tile(tf.convert_to_tensor(init, x.dtype)[None], [num_chains, 1, 1])

    def target(theta):  # [C, P, L] -> [C, P]
        return task.log_posterior(theta, x, y, mask)

    sampler = tfm.NoUTurnSampler(target, step_size=tf.fill([people, 1], tf.constant(0.1, x.dtype)))
    if bounded:  # sample in the prior's unconstrained space, so no step leaves the support
        sampler = tfm.TransformedTransitionKernel(sampler, task.prior().experimental_default_event_space_bijector())
    kernel = tfm.DualAveragingStepSizeAdaptation(sampler, num_adaptation_steps=int(0.8 * num_burnin))

    def run(s):
        return tfm.sample_chain(
            num_results,
            state,
            kernel=kernel,
            num_burnin_steps=num_burnin,
            seed=s,
            trace_fn=lambda _, r: r.new_step_size,
        )

    draws, step = tf.function(run, jit_compile=jit_compile)(tf.constant(seed, tf.int32))
    rhat = tfm.potential_scale_reduction(draws, independent_chain_ndims=1, split_chains=True)
    ess = _quietly(tfm.effective_sample_size, draws, cross_chain_dims=1)
    return NutsResult(draws, rhat, ess, step[-1])


def _best_prior_draws(task, x, y, mask, num_chains: int, seed, num_draws: int = 256):
    """Starts [C, P, L]: per person, the C prior draws (of num_draws) with the highest posterior density."""
    people = x.shape[0]
    draws = task.sample_prior(num_draws * people, seed=tf.constant([seed[0], seed[1] + 7919], tf.int32))
    draws = tf.reshape(tf.cast(draws, x.dtype), [num_draws, people, -1])  # [K, P, L]
    best = tf.math.top_k(tf.transpose(task.log_posterior(draws, x, y, mask)), num_chains).indices  # [P, C]
    return tf.transpose(tf.gather(tf.transpose(draws, [1, 0, 2]), best, batch_dims=1), [1, 0, 2])


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


_COMPILED = {}


def laplace_posterior(task, x, y, mask=None, num_steps: int = 30):
    """Gaussian approximation at the posterior mode (damped Newton with the exact Hessian), for P
    people at once in one compiled graph.

    x: [P, n, Dx], y: [P, n, Dy], mask: [P, n] bool or None. Returns `tfd.MultivariateNormalTriL`
    with batch shape [P] and event [L]; its `.loc` is the mode. Newton converges quadratically on
    the log-concave migraine posterior; 30 steps leave it at the mode to float precision.
    """
    x, y = tf.convert_to_tensor(x), tf.convert_to_tensor(y)
    mask = tf.ones(tf.shape(x)[:2], tf.bool) if mask is None else tf.cast(mask, tf.bool)
    key = (id(task), num_steps)
    if key not in _COMPILED:
        # One trace per input shape: a trace relaxed to an unknown number of days would reach
        # task code that needs it static (the migraine joint distribution's sample size).
        _COMPILED[key] = tf.function(lambda a, b, m: _newton_mode(task, a, b, m, num_steps))
    theta, h = _COMPILED[key](x, y, mask)
    cov = tf.linalg.inv(-h)
    cov = 0.5 * (cov + tf.linalg.matrix_transpose(cov))
    return tfp.distributions.MultivariateNormalTriL(theta, tf.linalg.cholesky(cov))
