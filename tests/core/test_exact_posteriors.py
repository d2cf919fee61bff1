"""Exact reference posteriors: NUTS and Laplace against a dense grid on a one-factor migraine model."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.core.exact import laplace_posterior, nuts_posterior
from tfp_aline.migraine.feature_table import read_feature_table
from tfp_aline.migraine.task import MigraineModelConfig, MigraineTask


@pytest.fixture(scope="module")
def one_factor(tmp_path_factory):
    """A migraine model with one factor: theta = (w, b), small enough for a dense 2-D grid."""
    path = tmp_path_factory.mktemp("table") / "one.csv"
    path.write_text(
        "category,variable,Weight,Typical Range,Migrane impact pattern\n"
        "stress,Perceived stress (score),5,0-10,Higher stress raises risk\n"
    )
    model = MigraineModelConfig(weight_scale=1.0, weight_spread=0.8, baseline_spread=0.8)
    task = MigraineTask(read_feature_table(path), model, dtype=tf.float64)
    episodes = task.sample_episodes(3, 40, seed=tf.constant([5, 1]))
    return task, episodes


def grid_moments(task, x, y):
    """Posterior mean and std of (w, b) per person on a dense grid: [P, 2], [P, 2].

    The grid reaches at least 7 prior SDs beyond any posterior mass (checked by the edges test).
    """
    w = np.linspace(-5, 7, 481)  # prior: w ~ N(1, 0.8), b ~ N(b0, 0.8) with b0 near -2.5
    b = np.linspace(-10, 4, 561)
    W, B = np.meshgrid(w, b, indexing="ij")
    grid = tf.constant(np.stack([W.ravel(), B.ravel()], -1))  # [G, 2]
    means, stds = [], []
    for p in range(x.shape[0]):
        theta = grid[:, None, :]  # [G, 1, 2]
        lp = task.log_posterior(theta, x[p : p + 1], y[p : p + 1]).numpy()[:, 0]
        prob = np.exp(lp - lp.max())
        prob /= prob.sum()
        m = prob @ grid.numpy()
        means.append(m)
        stds.append(np.sqrt(prob @ (grid.numpy() - m) ** 2))
    return np.array(means), np.array(stds)


def test_grid_covers_the_posterior(one_factor):
    task, ep = one_factor
    mean, std = grid_moments(task, ep.query_x, ep.query_y)
    assert np.all(mean[:, 0] - 6 * std[:, 0] > -5) and np.all(mean[:, 0] + 6 * std[:, 0] < 7)
    assert np.all(mean[:, 1] - 6 * std[:, 1] > -10) and np.all(mean[:, 1] + 6 * std[:, 1] < 4)


def test_nuts_matches_a_dense_grid(one_factor):
    task, ep = one_factor
    result = nuts_posterior(task, ep.query_x, ep.query_y, num_chains=4, num_results=1000, num_burnin=500, seed=(3, 4))
    assert result.draws.shape == (1000, 4, 3, 2)
    assert np.all(result.rhat.numpy() < 1.05) and np.all(result.ess.numpy() > 400)
    mean, std = grid_moments(task, ep.query_x, ep.query_y)
    draws = result.flat.numpy()
    # Monte Carlo error of a mean is std / sqrt(ESS); allow 4 of them
    se = std / np.sqrt(result.ess.numpy())
    np.testing.assert_array_less(np.abs(draws.mean(0) - mean), 4 * se)
    np.testing.assert_allclose(draws.std(0), std, rtol=0.1)


def test_laplace_mode_and_spread_against_the_grid(one_factor):
    task, ep = one_factor
    q = laplace_posterior(task, ep.query_x, ep.query_y)
    mean, std = grid_moments(task, ep.query_x, ep.query_y)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    # Laplace is approximate: close to the grid here (40 days make the posterior near Gaussian)
    np.testing.assert_allclose(q.loc.numpy(), mean, atol=0.25 * std.max())
    np.testing.assert_allclose(q.stddev().numpy(), std, rtol=0.2)
    # the mode is a stationary point of the log posterior
    theta = tf.Variable(q.loc)
    with tf.GradientTape() as tape:
        lp = tf.reduce_sum(task.log_posterior(theta, ep.query_x, ep.query_y))
    assert np.abs(tape.gradient(lp, theta).numpy()).max() < 1e-5


@pytest.mark.slow  # two traces of the Newton loop: about 18 s on one core
def test_laplace_takes_any_number_of_days_one_call_after_another(migraine_task, seed):
    """Issue 22: 30 days, then 1 day, failed inside TFP (the second trace had no static day count)."""
    batch = migraine_task.sample_episodes(3, 30, seed=seed)
    for n in (30, 1):
        q = laplace_posterior(migraine_task, batch.query_x[:, :n], batch.query_y[:, :n])
        assert q.loc.shape == (3, migraine_task.num_parameters) and np.isfinite(q.loc.numpy()).all()
