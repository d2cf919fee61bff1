"""The migraine joint distribution: episode shapes, exact log density, base rate, NUTS recovery."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from scipy import stats

from tfp_aline.errors import ConfigError
from tfp_aline.migraine.task import MigraineTask


@pytest.mark.parametrize("batch", [1, 200])
def test_episode_shapes_and_dtypes(task, seed, batch):
    ep = task.sample_episodes(batch, 50, seed=seed, num_initial_context=3, num_predictive_targets=7)
    d, L = task.x_dim, task.num_parameters
    expected = dict(
        theta=[batch, L],
        query_x=[batch, 50, d],
        query_y=[batch, 50, 1],
        context_x=[batch, 3, d],
        context_y=[batch, 3, 1],
        target_x=[batch, 7, d],
        target_y=[batch, 7, 1],
    )
    for name, shape in expected.items():
        value = getattr(ep, name)
        assert value.shape.as_list() == shape and value.dtype == tf.float32, name
    assert set(np.unique(ep.query_y.numpy())) <= {0.0, 1.0}
    assert L == d + 1 and task.parameter_names[-1] == "Baseline (logit)"


def test_empty_context_and_targets(task, seed):
    ep = task.sample_episodes(4, 10, seed=seed)
    assert ep.context_x.shape[1] == 0 and ep.target_y.shape[1] == 0


def test_sampling_is_reproducible_inside_tf_function(task, seed):
    sample = tf.function(lambda s: task.sample_episodes(5, 20, seed=s, num_initial_context=1))
    a, b = sample(seed), sample(seed)
    eager = task.sample_episodes(5, 20, seed=seed, num_initial_context=1)
    for x, y, z in zip(a, b, eager):
        np.testing.assert_array_equal(x.numpy(), y.numpy())
        np.testing.assert_allclose(x.numpy(), z.numpy(), atol=1e-6)
    c = sample(seed + 1)
    assert not np.array_equal(a.theta.numpy(), c.theta.numpy())


def test_parameter_groups_come_from_categories(task):
    assert task.parameter_indices("sleep") == (0, 1, 2, 3)
    assert task.parameter_indices("baseline") == (task.num_parameters - 1,)
    assert task.parameter_indices("all") == tuple(range(task.num_parameters))
    assert task.parameter_indices(["stress", 0]) == (4, 5, 0)
    with pytest.raises(ConfigError, match="unknown target 'sleeep'"):
        task.parameter_indices("sleeep")
    with pytest.raises(ConfigError, match="out of range"):
        task.parameter_indices([99])


def hand_log_posterior(task, theta, x, y, mask):
    """log N(w; beta_pop, tau_w) + log N(b; b0, tau_b) + sum mask * log Bernoulli(y; sigmoid(x.w + b))."""
    c = task.config
    w, b = theta[..., :-1], theta[..., -1]
    lp = stats.norm.logpdf(w, task.beta_pop, c.weight_spread).sum(-1)
    lp += stats.norm.logpdf(b, task.b0, c.baseline_spread)
    logits = np.einsum("bnd,bd->bn", x, w) + b[:, None]
    loglik = y * -np.logaddexp(0, -logits) + (1 - y) * -np.logaddexp(0, logits)
    return lp + (mask * loglik).sum(-1)


@pytest.mark.parametrize("dtype,tol", [(tf.float64, 1e-9), (tf.float32, 1e-5)])
def test_log_posterior_matches_hand_computation(seed, dtype, tol):
    task = MigraineTask(dtype=dtype)
    ep = task.sample_episodes(6, 40, seed=seed)
    theta = ep.theta + tf.random.stateless_normal(ep.theta.shape, seed, dtype=dtype)  # off the truth
    mask = np.random.default_rng(0).random((6, 40)) < 0.7
    got = task.log_posterior(theta, ep.query_x, ep.query_y, tf.constant(mask)).numpy()
    want = hand_log_posterior(
        task,
        theta.numpy().astype(float),
        ep.query_x.numpy().astype(float),
        ep.query_y.numpy()[..., 0].astype(float),
        mask,
    )
    np.testing.assert_allclose(got, want, rtol=tol)
    full = task.log_posterior(theta, ep.query_x, ep.query_y).numpy()
    np.testing.assert_allclose(
        full,
        hand_log_posterior(
            task,
            theta.numpy().astype(float),
            ep.query_x.numpy().astype(float),
            ep.query_y.numpy()[..., 0].astype(float),
            np.ones((6, 40)),
        ),
        rtol=tol,
    )


def test_log_posterior_broadcasts_over_chains(task, seed):
    ep = task.sample_episodes(3, 10, seed=seed)
    chains = tf.stack([ep.theta, ep.theta * 0.5])
    lp = task.log_posterior(chains, ep.query_x, ep.query_y)
    assert lp.shape == (2, 3)
    np.testing.assert_allclose(lp[0], task.log_posterior(ep.theta, ep.query_x, ep.query_y), rtol=1e-6)


def test_simulate_outcomes_follow_the_likelihood(task, seed):
    ep = task.sample_episodes(2, 4000, seed=seed)
    y = task.simulate_outcomes(ep.theta, ep.query_x, seed=seed + 7)
    p = tf.sigmoid(task.outcome_logits(ep.theta, ep.query_x)).numpy()
    assert y.shape == (2, 4000, 1)
    err = (y[..., 0].numpy() - p).mean(-1)
    se = np.sqrt((p * (1 - p)).sum(-1)) / 4000
    assert np.all(np.abs(err) < 4 * se)


def test_migraine_day_rate_matches_configured_base_rate(task, seed):
    ep = task.sample_episodes(400, 250, seed=seed)
    per_person = ep.query_y.numpy()[..., 0].mean(-1)
    se = per_person.std(ddof=1) / np.sqrt(len(per_person))  # people are the independent units
    assert abs(per_person.mean() - task.config.base_rate) < 4 * se


def test_nuts_recovers_a_simulated_person(task):
    """NUTS on the task's exact log posterior, 300 observed days: 95% intervals cover the truth."""
    tfm = tfp.mcmc
    ep = task.sample_episodes(1, 300, seed=tf.constant([7, 0]))
    chains = 4
    init = tf.tile(tf.constant(task.prior_mean, tf.float32)[None, None], [chains, 1, 1])
    kernel = tfm.DualAveragingStepSizeAdaptation(
        tfm.NoUTurnSampler(lambda th: task.log_posterior(th, ep.query_x, ep.query_y), step_size=0.1),
        num_adaptation_steps=400,
    )

    @tf.function(jit_compile=True)
    def run(s):
        return tfm.sample_chain(800, init, kernel=kernel, num_burnin_steps=400, seed=s, trace_fn=None)

    draws = run(tf.constant([1, 0]))[:, :, 0, :]  # [draws, chains, L]
    assert tfm.potential_scale_reduction(draws).numpy().max() < 1.05
    flat = draws.numpy().reshape(-1, task.num_parameters)
    lo, hi = np.quantile(flat, [0.025, 0.975], axis=0)
    truth = ep.theta.numpy()[0]
    assert np.mean((truth >= lo) & (truth <= hi)) >= 0.85
    # the data were informative: the posterior is narrower than the prior and nearer the truth
    assert np.mean(flat.std(0) / task.prior_std) < 0.9
    rmse = lambda m: np.sqrt(np.mean((m - truth) ** 2))  # noqa: E731
    assert rmse(flat.mean(0)) < rmse(task.prior_mean)
