"""The CES example task: its censored likelihood against closed forms, shapes, and a positive sPCE."""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from examples.ces import CensoredNormal, CESTask
from tfp_aline.evaluation.spce import contrastive_bounds


def test_censored_normal_is_a_proper_distribution():
    d = CensoredNormal(0.7, 1.3, -1.0, 2.0)
    low, high = float(np.exp(d.log_prob(-1.0))), float(np.exp(d.log_prob(2.0)))
    assert low == pytest.approx(stats.norm.cdf(-1.0, 0.7, 1.3), rel=1e-4)
    assert high == pytest.approx(stats.norm.sf(2.0, 0.7, 1.3), rel=1e-4)
    grid = np.linspace(-1.0, 2.0, 20001)[1:-1].astype(np.float32)
    inside = np.trapezoid(np.exp(d.log_prob(grid).numpy()), grid)
    assert low + inside + high == pytest.approx(1.0, abs=1e-3)
    x = d.sample(20000, seed=tf.constant([1, 2])).numpy()
    assert x.min() >= -1.0 and x.max() <= 2.0
    assert np.mean(x == -1.0) == pytest.approx(low, abs=0.01) and np.mean(x == 2.0) == pytest.approx(high, abs=0.01)


def test_ces_shapes_prior_and_likelihood():
    task = CESTask()
    b = task.sample_episodes(64, 12, seed=tf.constant([3, 4]))
    assert b.theta.shape == (64, 5) and b.query_x.shape == (64, 12, 6) and b.query_y.shape == (64, 12, 1)
    theta = b.theta.numpy()
    assert np.all((theta[:, 0] > 0) & (theta[:, 0] < 1))
    np.testing.assert_allclose(theta[:, 1:4].sum(1), 1.0, atol=1e-5)
    edge = np.log(2.0**-22 / (1 - 2.0**-22))
    y = b.query_y.numpy()
    assert y.min() >= edge - 1e-4 and y.max() <= -edge + 1e-4
    lp = task.log_posterior(b.theta, b.query_x, b.query_y).numpy()
    assert lp.shape == (64,) and np.isfinite(lp).all()


def test_ces_utility_matches_a_direct_computation():
    task = CESTask()
    theta = np.array([[0.4, 0.2, 0.3, 0.5, 0.1]], np.float32)
    x = np.array([[[0.1, 0.5, 0.9, 0.3, 0.3, 0.3]]], np.float32)
    rho, alpha, u = 0.4, np.array([0.2, 0.3, 0.5]), np.exp(0.1)
    utility = lambda z: np.sum(alpha * z**rho) ** (1 / rho)  # noqa: E731
    z, z2 = 100 * x[0, 0, :3].astype(np.float64), 100 * x[0, 0, 3:].astype(np.float64)
    d = task.likelihood(theta, x)
    assert float(d._loc[0, 0]) == pytest.approx(u * (utility(z) - utility(z2)), rel=1e-4)
    assert float(d._scale[0, 0]) == pytest.approx(u * 0.005 * (1 + np.linalg.norm(z - z2)), rel=1e-4)


def test_random_designs_carry_information():
    task = CESTask()
    b = task.sample_episodes(200, 10, seed=tf.constant([5, 6]))
    r = contrastive_bounds(task, b.theta, b.query_x, b.query_y, num_contrastive=2000, seed=(0, 1))
    assert r.spce.mean() > 1.0 and np.all(r.spce <= r.limit + 1e-9)
    assert r.snmc.mean() >= r.spce.mean()
