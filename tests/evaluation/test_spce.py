"""sPCE and sNMC against the closed-form EIG of a linear-Gaussian model, and their invariances."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.evaluation.spce import contrastive_bounds, data_log_likelihood
from tfp_aline.tasks.base import Task

tfd = tfp.distributions

NOISE = 1.0


class LinearGaussianTask(Task):
    """theta ~ N(0, I_2), x ~ N(0, I_2), y ~ N(x . theta, 1): EIG of designs X is 0.5 log det(I + X^T X)."""

    name = "linear_gaussian"
    x_dim = 2
    outcome = "continuous"
    parameter_names = ("a", "b")
    parameter_groups = {"all2": (0, 1)}

    def prior(self):
        return tfd.MultivariateNormalDiag(tf.zeros(2), tf.ones(2))

    def design_distribution(self, num_designs):
        return tfd.Independent(tfd.Normal(tf.zeros([num_designs, 2]), 1.0), reinterpreted_batch_ndims=2)

    def likelihood(self, theta, x):
        return tfd.Normal(tf.reduce_sum(theta[..., None, :] * x, -1), NOISE)


def exact_eig(x):
    """0.5 log det(I + X^T X / sigma^2) per person: x [B, n, 2] -> [B]."""
    gram = np.einsum("bni,bnj->bij", x, x) / NOISE**2
    return 0.5 * np.linalg.slogdet(np.eye(2)[None] + gram)[1]


@pytest.fixture(scope="module")
def episodes():
    task = LinearGaussianTask()
    batch = task.sample_episodes(4000, 3, seed=tf.constant([3, 4]))
    return task, batch


def test_bounds_bracket_the_closed_form_eig_and_tighten_with_L(episodes):
    task, b = episodes
    eig = exact_eig(b.query_x.numpy().astype(np.float64)).mean()
    small = contrastive_bounds(task, b.theta, b.query_x, b.query_y, num_contrastive=10, seed=(1, 2))
    large = contrastive_bounds(task, b.theta, b.query_x, b.query_y, num_contrastive=20_000, seed=(1, 2))
    # Monte Carlo error of a mean over 4000 people: the per-person spread is about 1 nat.
    tol = 3 * large.spce.std() / np.sqrt(len(large.spce))
    assert small.spce.mean() < large.spce.mean() <= eig + tol
    assert small.snmc.mean() > large.snmc.mean() >= eig - tol
    assert large.snmc.mean() - large.spce.mean() < 0.05  # both close in on the EIG
    assert abs(large.spce.mean() - eig) < 0.05
    assert np.all(small.spce <= small.limit + 1e-9) and small.limit == pytest.approx(np.log(11))


def test_every_person_sees_the_same_contrastive_set_whatever_the_batch(episodes, monkeypatch):
    import tfp_aline.evaluation.spce as spce

    task, b = episodes
    few = contrastive_bounds(task, b.theta[:50], b.query_x[:50], b.query_y[:50], num_contrastive=1000, seed=(5, 6))
    monkeypatch.setattr(spce, "MAX_ELEMENTS", spce.BLOCK * 3 * 7)  # 7 people at a time
    many = contrastive_bounds(task, b.theta[:60], b.query_x[:60], b.query_y[:60], num_contrastive=1000, seed=(5, 6))
    np.testing.assert_allclose(few.spce, many.spce[:50], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(few.snmc, many.snmc[:50], rtol=1e-5, atol=1e-5)
    other = contrastive_bounds(task, b.theta[:50], b.query_x[:50], b.query_y[:50], num_contrastive=1000, seed=(5, 7))
    assert not np.allclose(few.snmc, other.snmc)  # the seed does choose the set


def test_masked_data_counts_as_absent(episodes):
    task, b = episodes
    x, y, th = b.query_x[:20], b.query_y[:20], b.theta[:20]
    mask = tf.constant([[True, True, False]] * 20)
    masked = contrastive_bounds(task, th, x, y, mask=mask, num_contrastive=500, seed=(7, 8))
    dropped = contrastive_bounds(task, th, x[:, :2], y[:, :2], num_contrastive=500, seed=(7, 8))
    np.testing.assert_allclose(masked.spce, dropped.spce, atol=1e-4)


def test_data_log_likelihood_matches_the_likelihood_sum(episodes):
    task, b = episodes
    theta = task.sample_prior(5, seed=tf.constant([9, 9]))[:, None, :]  # [5, 1, 2]
    got = data_log_likelihood(task, theta, b.query_x[:4], b.query_y[:4]).numpy()
    x, y = b.query_x.numpy()[:4], b.query_y.numpy()[:4, :, 0]
    mean = np.einsum("cl,bnl->cbn", theta.numpy()[:, 0], x)
    want = (-0.5 * (y[None] - mean) ** 2 - 0.5 * np.log(2 * np.pi)).sum(-1)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
