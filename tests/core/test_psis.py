"""The PSIS check against a conjugate Gaussian model whose exact posterior is known in closed form."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.psis import KHAT_MAX, log_importance_ratios, psis_check
from tfp_aline.tasks.base import Task

tfd = tfp.distributions
NOISE = 0.5


class LinearGaussianTask(Task):
    """theta ~ N(0, I_2), x ~ N(0, I_2), y ~ N(x . theta, NOISE^2): the posterior is Gaussian."""

    name = "linear_gaussian"
    x_dim = 2
    outcome = "continuous"
    parameter_names = ("a", "b")
    parameter_groups = {"all_of_them": (0, 1)}
    dtype = tf.float64

    def prior(self):
        return tfd.Independent(tfd.Normal(tf.zeros([2], tf.float64), 1.0), 1)

    def design_distribution(self, n):
        return tfd.Independent(tfd.Normal(tf.zeros([n, 2], tf.float64), 1.0), 2)

    def likelihood(self, theta, x):
        return tfd.Normal(tf.linalg.matvec(x, theta), NOISE)


@pytest.fixture(scope="module")
def exact():
    """Episodes of 4 people with 6 observations, and their exact posterior mean [P, 2] and
    marginal sd [P, 2] (precision I + X^T X / s^2)."""
    task = LinearGaussianTask()
    ep = task.sample_episodes(4, 6, seed=tf.constant([2, 9]))
    x, y = ep.query_x.numpy(), ep.query_y.numpy()[..., 0]
    cov = np.linalg.inv(np.eye(2) + np.einsum("pni,pnj->pij", x, x) / NOISE**2)
    mean = np.einsum("pij,pnj,pn->pi", cov, x, y) / NOISE**2
    return task, ep, mean, np.sqrt(np.diagonal(cov, axis1=1, axis2=2))


def mean_field(loc, scale):
    return tfd.Normal(tf.constant(loc, tf.float64), tf.constant(scale, tf.float64))  # batch [P, L]


def test_log_ratios_are_log_posterior_minus_log_q(exact):
    task, ep, mean, sd = exact
    q = mean_field(mean, sd)
    draws = q.sample(5, seed=tf.constant([1, 2])).numpy()  # [S, P, L]
    got = log_importance_ratios(task, q, draws, ep.query_x, ep.query_y)  # [P, S]
    lp = task.log_posterior(tf.constant(draws), ep.query_x, ep.query_y).numpy()
    np.testing.assert_allclose(got, (lp - q.log_prob(draws).numpy().sum(-1)).T)


def test_a_wide_shifted_posterior_is_corrected_to_the_exact_mean(exact):
    """q 1.5x too wide and half an sd off: k-hat below 0.7 and the weighted mean lands on the
    exact one, within a few Monte Carlo errors sd / sqrt(ESS)."""
    task, ep, mean, sd = exact
    q = mean_field(mean + 0.5 * sd, 1.5 * sd)
    check = psis_check(task, q, ep.query_x, ep.query_y, num_samples=4000, seed=(3, 3))
    assert check.samples.shape == (4000, 4, 2) and check.log_weights.shape == (4, 4000)
    assert np.all(check.ok) and np.all(check.khat < 0.5)
    np.testing.assert_allclose(check.weights.sum(-1), 1.0, rtol=1e-9)
    assert np.all((check.ess > 500) & (check.ess < 4000))
    se = sd / np.sqrt(check.ess)[:, None]
    np.testing.assert_array_less(np.abs(check.corrected_mean() - mean), 4 * se)
    np.testing.assert_allclose(check.corrected_sd(), sd, rtol=0.1)
    q05, q95 = np.moveaxis(check.corrected_quantiles([0.05, 0.95]), -1, 0)
    np.testing.assert_allclose(q05, mean - 1.6449 * sd, atol=0.25 * sd.max())
    np.testing.assert_allclose(q95, mean + 1.6449 * sd, atol=0.25 * sd.max())


def test_an_overconfident_posterior_fails_the_check(exact):
    """q with a quarter of the exact sd: the weights' tail is heavy (in one dimension the ratio of
        two normals has tail index 1 - (sd_q / sd_p)^2 = 0.94); the estimate from 4000 draws scatters
    around it, so: above 0.7 on average by far, and for at least 3 of the 4 people."""
    task, ep, mean, sd = exact
    check = psis_check(task, mean_field(mean, 0.25 * sd), ep.query_x, ep.query_y, num_samples=4000, seed=(4, 4))
    assert check.khat.mean() > 0.8 and (check.khat > KHAT_MAX).sum() >= 3
    assert np.all(check.ok == (check.khat <= KHAT_MAX))


def test_the_exact_posterior_passes_with_full_ess(exact):
    """With no data the exact posterior is the prior, itself mean-field: q = p, equal weights."""
    task, ep, _, _ = exact
    q = mean_field(np.zeros((4, 2)), np.ones((4, 2)))
    check = psis_check(task, q, ep.query_x[:, :0], ep.query_y[:, :0], num_samples=1000, seed=(5, 5))
    np.testing.assert_allclose(check.ess, 1000, rtol=1e-6)
    np.testing.assert_allclose(check.weights, 1e-3, rtol=1e-6)
