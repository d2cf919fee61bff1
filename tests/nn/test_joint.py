"""The joint posterior head: its density against tfd references, marginals over subsets, saving,
and the training options that add it to a trained run (init_from, freeze)."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_probability as tfp
from conftest import ROOT

from tfp_aline.config import load_config
from tfp_aline.core import objectives
from tfp_aline.core.joint import JOINT_KEYS, joint_log_prob, joint_posterior, mixture_moments
from tfp_aline.errors import ConfigError, TrainingError
from tfp_aline.nn.model import AlineModel
from tfp_aline.training.trainer import Trainer

tfd = tfp.distributions
SMOKE = ROOT / "configs" / "smoke.yaml"
B, K, L, R = 4, 3, 5, 2


@pytest.fixture
def outputs():
    rng = np.random.default_rng(0)
    return {
        "joint_logits": tf.constant(rng.normal(size=[B, K]), tf.float32),
        "joint_locs": tf.constant(rng.normal(size=[B, K, L]), tf.float32),
        "joint_scales": tf.constant(rng.uniform(0.2, 2.0, size=[B, K, L]), tf.float32),
        "joint_factors": tf.constant(rng.normal(size=[B, K, L, R]), tf.float32),
    }


def reference_log_prob(outputs, theta, idx):
    """log of sum_k w_k N(theta_S; mu_S, Sigma_SS), Sigma = diag(s) corr(F F^T + I) diag(s), in numpy."""
    o = {k: np.asarray(v, np.float64) for k, v in outputs.items()}
    w = np.exp(o["joint_logits"] - np.log(np.exp(o["joint_logits"]).sum(-1, keepdims=True)))
    out = []
    for b in range(B):
        total = 0.0
        for k in range(K):
            f = o["joint_factors"][b, k]
            a = f @ f.T + np.eye(L)
            d = np.sqrt(np.diag(a))
            s = o["joint_scales"][b, k]
            cov = (s / d)[:, None] * a * (s / d)[None, :]
            cov, mu = cov[np.ix_(idx, idx)], o["joint_locs"][b, k, idx]
            r = theta[b, idx] - mu
            quad = r @ np.linalg.solve(cov, r)
            logn = -0.5 * (quad + np.linalg.slogdet(cov)[1] + len(idx) * math.log(2 * math.pi))
            total += w[b, k] * math.exp(logn)
        out.append(math.log(total))
    return np.array(out)


def test_joint_log_prob_matches_a_dense_mixture_of_normals(outputs):
    theta = np.random.default_rng(1).normal(size=[B, L])
    got = joint_posterior(outputs).log_prob(tf.constant(theta, tf.float32)).numpy()
    np.testing.assert_allclose(got, reference_log_prob(outputs, theta, list(range(L))), rtol=1e-4, atol=1e-4)


def test_masked_log_prob_is_the_exact_marginal_over_each_episodes_subset(outputs):
    theta = np.random.default_rng(2).normal(size=[B, L]).astype(np.float32)
    subsets = [[0, 1], [2], [1, 3, 4], [0, 1, 2, 3, 4]]
    mask = np.zeros([B, L], bool)
    for b, s in enumerate(subsets):
        mask[b, s] = True
    got = joint_log_prob(outputs, tf.constant(theta), tf.constant(mask)).numpy()
    for b, s in enumerate(subsets):
        want = reference_log_prob(outputs, theta, s)[b]
        gathered = joint_posterior(outputs, s).log_prob(theta[:, s]).numpy()[b]
        assert got[b] == pytest.approx(want, abs=1e-4) and gathered == pytest.approx(want, abs=1e-4)
    # Nothing active (a predictive target): log q of the empty set is 0.
    empty = joint_log_prob(outputs, tf.constant(theta), tf.zeros([B, L], tf.bool)).numpy()
    np.testing.assert_allclose(empty, 0.0, atol=1e-5)


def test_component_sds_are_the_scales_and_the_moments_match_samples(outputs):
    q = joint_posterior(outputs)
    comp_sd = tf.sqrt(tf.linalg.diag_part(q.components_distribution.covariance())).numpy()
    np.testing.assert_allclose(comp_sd, outputs["joint_scales"].numpy(), rtol=1e-5)
    mean, cov = mixture_moments(q)
    draws = q.sample(200_000, seed=tf.constant([3, 4])).numpy()
    np.testing.assert_allclose(mean.numpy(), draws.mean(0), atol=0.03)
    centred = draws - draws.mean(0)
    emp = np.einsum("nbi,nbj->bij", centred, centred) / len(draws)
    np.testing.assert_allclose(cov.numpy(), emp, atol=0.06)
    assert np.all(np.linalg.eigvalsh(cov.numpy()) > 0)


def tiny_model(task, joint="mixture_tril"):
    keras.utils.set_random_seed(0)
    model = AlineModel(
        task.num_parameters,
        task.x_dim,
        embed_dim=8,
        num_layers=1,
        num_heads=2,
        ff_dim=16,
        num_components=3,
        joint=joint,
        joint_rank=2,
    )
    model.build()
    return model


def test_the_model_outputs_a_joint_that_saves_and_loads(task, tmp_path):
    model = tiny_model(task)
    inputs = model.dummy_inputs(num_predictive=2)
    out = model(inputs)
    assert out["joint_logits"].shape == (1, 3) and out["joint_factors"].shape == (1, 3, task.num_parameters, 2)
    q = AlineModel.joint_posterior(out, (0, 2))
    assert q.event_shape == (2,) and q.sample(5, seed=tf.constant([0, 1])).shape == (5, 1, 2)
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.has_joint and again.joint_rank == 2
    back = again(inputs)
    for k in JOINT_KEYS:
        np.testing.assert_allclose(back[k].numpy(), out[k].numpy(), rtol=1e-6)
    with pytest.raises(ValueError, match="joint='mixture_tril'"):
        AlineModel.joint_posterior(tiny_model(task, "none")(inputs))


def test_the_joint_reward_is_the_joint_log_q_per_active_parameter(task):
    model = tiny_model(task)
    batch = task.sample_episodes(2, 6, seed=tf.constant([1, 2]), num_initial_context=3, num_predictive_targets=2)
    inputs = {
        "context_x": batch.context_x,
        "context_y": batch.context_y,
        "context_mask": tf.ones(batch.context_x.shape[:2], tf.bool),
        "target_x": batch.target_x,
    }
    out = model(inputs, compute_policy=False)
    mask = np.zeros([2, task.num_parameters + 2], bool)
    mask[0, :2] = True
    mask[1, task.num_parameters :] = True  # the predictive target
    model.joint_reward = True
    got = objectives.target_log_prob(model, out, batch, tf.constant(mask)).numpy()
    model.joint_reward = False
    joint = AlineModel.joint_posterior(out, (0, 1)).log_prob(tf.cast(batch.theta[:, :2], tf.float32)).numpy()
    pred = AlineModel.predictive(out).log_prob(tf.cast(batch.target_y[..., 0], tf.float32)).numpy()
    assert got[0] == pytest.approx(joint[0] / 2, abs=1e-5)
    assert got[1] == pytest.approx(pred[1].mean(), abs=1e-5)


def test_config_refuses_joint_settings_that_cannot_work():
    for override, message in [
        ("network.joint=gaussian", "network.joint"),
        ("network.joint_rank=0", "network.joint_rank"),
        ("network.joint_reward=true", "needs a joint head"),
        ("training.freeze=[embed]", "'embed' is not a layer"),
        ("training.freeze=[joint_head]", "lacks"),
    ]:
        with pytest.raises(ConfigError, match=message):
            load_config(SMOKE, [override])


def test_init_from_copies_the_trained_layers_and_freeze_keeps_them(smoke_run_dir, tmp_path):
    frozen = ["embedder", "transformer", "inference_head", "predictive_head", "policy_head"]
    cfg = load_config(
        SMOKE,
        [
            "network.joint=mixture_tril",
            f"training.init_from={smoke_run_dir}",
            f"training.freeze=[{','.join(frozen)}]",
            "training.epochs=4",
        ],
    )
    trainer = Trainer(cfg, tmp_path / "joint")
    source = keras.models.load_model(smoke_run_dir / "model.keras")
    before = {n: [w.copy() for w in getattr(trainer.model, n).get_weights()] for n in frozen + ["joint_head"]}
    for name in frozen:
        for a, b in zip(before[name], getattr(source, name).get_weights()):
            np.testing.assert_array_equal(a, b)
    trainer.fit(progress=False)
    for name in frozen:
        for a, b in zip(before[name], getattr(trainer.model, name).get_weights()):
            np.testing.assert_array_equal(a, b)
    moved = [np.abs(a - b).max() for a, b in zip(before["joint_head"], trainer.model.joint_head.get_weights())]
    assert max(moved) > 0
    with pytest.raises(TrainingError, match="holding a model.keras"):
        Trainer(load_config(SMOKE, ["training.init_from=no/such/run"]), tmp_path / "y")
    with pytest.raises(TrainingError, match="init_from"):
        Trainer(load_config(SMOKE, [f"training.init_from={smoke_run_dir}", "network.embed_dim=24"]), tmp_path / "x")
