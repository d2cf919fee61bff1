"""The Gaussian-copula joint posterior: a proper density whose marginals are exactly the network's mixtures."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.copula import COPULA_KEYS, MixtureMarginals, copula_log_prob, copula_posterior
from tfp_aline.core.joint import joint_keys, joint_log_prob, joint_posterior
from tfp_aline.migraine.mixtures import mixture_quantiles
from tfp_aline.nn.model import AlineModel

tfd = tfp.distributions
B, L, K, R = 3, 4, 5, 2


@pytest.fixture
def outputs():
    rng = np.random.default_rng(0)
    return {
        "mixture_logits": tf.constant(rng.normal(size=[B, L, K]), tf.float32),
        "mixture_locs": tf.constant(rng.normal(size=[B, L, K]), tf.float32),
        "mixture_scales": tf.constant(rng.uniform(0.2, 1.0, size=[B, L, K]), tf.float32),
        "copula_factors": tf.constant(rng.normal(size=[B, L, R]), tf.float32),
    }


def marginals(o):
    return AlineModel.posterior(o)


def test_without_correlation_it_is_the_product_of_the_marginals(outputs):
    o = dict(outputs, copula_factors=tf.zeros([B, L, R]))
    theta = marginals(o).sample(7, seed=tf.constant([1, 1]))  # [7, B, L]
    got = copula_posterior(o).log_prob(theta).numpy()
    np.testing.assert_allclose(got, tf.reduce_sum(marginals(o).log_prob(theta), -1).numpy(), atol=2e-5)


def test_it_integrates_to_one_on_a_grid(outputs):
    q = copula_posterior({k: v[:1] for k, v in outputs.items()}, (0, 1))
    g = np.linspace(-8.0, 8.0, 641)
    x, y = np.meshgrid(g, g)
    points = np.stack([x.ravel(), y.ravel()], -1)[:, None, :].astype(np.float32)  # [G, 1, 2]
    total = np.exp(q.log_prob(points).numpy()).sum() * (g[1] - g[0]) ** 2
    assert total == pytest.approx(1.0, abs=2e-3)


def test_the_masked_log_prob_is_the_copula_of_the_subset(outputs):
    theta = marginals(outputs).sample(seed=tf.constant([2, 2]))  # [B, L]
    mask = np.array([[1, 0, 1, 1], [1, 1, 0, 0], [0, 0, 1, 0]], bool)
    got = copula_log_prob(outputs, theta, tf.constant(mask)).numpy()
    for b in range(B):
        idx = tuple(np.flatnonzero(mask[b]))
        one = {k: v[b : b + 1] for k, v in outputs.items()}
        want = copula_posterior(one, idx).log_prob(tf.gather(theta[b : b + 1], idx, axis=-1)).numpy()[0]
        assert got[b] == pytest.approx(want, abs=1e-4)
    # A single parameter: exactly its marginal mixture.
    single = copula_posterior(outputs, (2,)).log_prob(theta[:, 2:3]).numpy()
    np.testing.assert_allclose(single, marginals(outputs).log_prob(theta).numpy()[:, 2], atol=1e-5)
    # The joint module hands a copula's outputs to the copula.
    assert joint_keys(outputs) == COPULA_KEYS
    want = copula_posterior(outputs).log_prob(theta).numpy()
    np.testing.assert_allclose(joint_log_prob(outputs, theta).numpy(), want)


def test_draws_have_the_marginals_quantiles_and_the_copulas_correlation(outputs):
    q = joint_posterior(outputs)
    draws = q.sample(40_000, seed=tf.constant([3, 4]))  # [S, B, L]
    o = {k: v.numpy().astype(float) for k, v in outputs.items()}
    for b in range(B):
        want = mixture_quantiles(o["mixture_logits"][b], o["mixture_locs"][b], o["mixture_scales"][b], (0.1, 0.5, 0.9))
        got = np.quantile(draws.numpy()[:, b], (0.1, 0.5, 0.9), axis=0).T
        np.testing.assert_allclose(got, want, atol=0.05)
    # Back in z-space the draws are the correlated standard normal: correlation normalise(F F^T + I).
    bij = MixtureMarginals(outputs["mixture_logits"], outputs["mixture_locs"], outputs["mixture_scales"])
    z = bij.inverse(draws)
    f = o["copula_factors"]
    a = f @ np.swapaxes(f, -1, -2) + np.eye(L)
    corr = a / np.sqrt(np.einsum("bii->bi", a)[:, :, None] * np.einsum("bii->bi", a)[:, None, :])
    emp = np.stack([np.corrcoef(z.numpy()[:, b].T) for b in range(B)])
    np.testing.assert_allclose(emp, corr, atol=0.03)
    # forward(inverse(theta)) = theta: sampling inverts the closed-form CDF.
    z50 = tf.constant(bij.inverse(draws[:50]).numpy())  # a new tensor, not the bijector's cached pair
    np.testing.assert_allclose(bij.forward(z50).numpy(), draws[:50].numpy(), atol=1e-4)


@pytest.mark.parametrize("seed", range(3))
def test_sampling_inverts_the_cdf_of_spread_out_multimodal_mixtures(seed):
    # Components of scales 1e-3 to 50, far apart: z(theta) is near flat between modes and steep
    # inside the narrow ones, where a plain Newton step leaves the bracket.
    rng = np.random.default_rng(seed)
    shape = [8, 10]
    logits, locs = rng.normal(size=shape) * 3, 5 * rng.normal(size=shape)
    scales = np.exp(rng.normal(size=shape) * 2 - 1)
    bij = MixtureMarginals(tf.constant(logits), tf.constant(locs), tf.constant(scales))
    z = rng.normal(size=[500, 8]) * 2.5
    theta = bij.forward(tf.constant(z))
    assert theta.shape == (500, 8) and theta.dtype == tf.float64
    # A new tensor: the bijector caches its own forward/inverse pairs and would hand z back.
    np.testing.assert_allclose(bij.inverse(tf.constant(theta.numpy())).numpy(), z, atol=1e-8)
    # The same draws with extra sample dimensions, and with none.
    np.testing.assert_allclose(bij.forward(tf.constant(z.reshape(5, 100, 8))).numpy().reshape(500, 8), theta.numpy())
    np.testing.assert_allclose(bij.forward(tf.constant(z[0])).numpy(), theta.numpy()[0])


def test_a_copula_model_saves_loads_and_keeps_the_marginal_outputs(tmp_path):
    keras.utils.set_random_seed(0)
    kw = dict(embed_dim=8, num_layers=1, num_heads=2, ff_dim=16, num_components=3, joint_rank=2)
    model = AlineModel(3, 2, joint="copula", **kw)
    model.build()
    inputs = model.dummy_inputs(num_predictive=1)
    out = model(inputs)
    assert out["copula_factors"].shape == (1, 3, 2)
    q = AlineModel.joint_posterior(out, (0, 2))
    assert q.event_shape == (2,) and q.sample(5, seed=tf.constant([0, 1])).shape == (5, 1, 2)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.has_joint and again.joint == "copula"
    back = again(inputs)
    for k in COPULA_KEYS:
        np.testing.assert_allclose(back[k].numpy(), out[k].numpy(), rtol=1e-6)
