"""Losses and the rollout: values against hand computations, masks, and the choice rule."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.core import objectives
from tfp_aline.core.choice import choice_noise, choose
from tfp_aline.core.rollout import rollout
from tfp_aline.core.targets import target_mask
from tfp_aline.migraine.task import MigraineTask
from tfp_aline.nn.model import AlineModel


def test_rewards_weights_and_policy_loss_match_hand_computation():
    rng = np.random.default_rng(0)
    logq = rng.normal(size=(5, 8)).astype(np.float32)  # [T + 1, B]
    rewards = objectives.step_rewards(tf.constant(logq)).numpy()
    np.testing.assert_allclose(rewards, logq[1:] - logq[:-1], rtol=1e-6)
    w = objectives.policy_weights(tf.constant(rewards), gamma=0.9).numpy()
    norm = (rewards - rewards.mean(1, keepdims=True)) / (rewards.std(1, keepdims=True) + 1e-8)
    np.testing.assert_allclose(w, 0.9 ** np.arange(1, 5)[:, None] * norm, rtol=1e-4, atol=1e-5)
    log_pi = rng.normal(size=(4, 8)).astype(np.float32)
    got = objectives.policy_loss(tf.constant(w), tf.constant(log_pi)).numpy()
    assert got == pytest.approx(-(w * log_pi).mean(), rel=1e-5)
    assert objectives.nll_loss(tf.constant(logq)).numpy() == pytest.approx(-logq.mean(), rel=1e-6)  # t = 0..T


def test_return_credit_is_the_normalised_reward_to_go():
    rng = np.random.default_rng(1)
    rewards = rng.normal(size=(4, 16))  # [T, B]
    for gamma in (1.0, 0.7):
        togo = np.stack([sum(gamma ** (s - t) * rewards[s] for s in range(t, 4)) for t in range(4)])
        got = objectives.reward_to_go(tf.constant(rewards, tf.float32), gamma).numpy()
        np.testing.assert_allclose(got, togo, rtol=1e-5, atol=1e-5)
        w = objectives.policy_weights(tf.constant(rewards, tf.float32), gamma, credit="return").numpy()
        want = (togo - togo.mean(1, keepdims=True)) / (togo.std(1, keepdims=True) + 1e-8)
        np.testing.assert_allclose(w, want, rtol=1e-4, atol=1e-4)
    # gamma = 1: a choice's return is the gain from it to the end of the episode
    logq = rng.normal(size=(5, 3))
    togo = objectives.reward_to_go(objectives.step_rewards(tf.constant(logq, tf.float32)), 1.0).numpy()
    np.testing.assert_allclose(togo, logq[-1][None] - logq[:-1], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="credit"):
        objectives.policy_weights(tf.constant(rewards, tf.float32), 1.0, credit="future")


def test_policy_weights_are_constants_for_the_gradient():
    r = tf.Variable([[1.0, 2.0, 4.0]])
    with tf.GradientTape() as tape:
        w = objectives.policy_weights(r, 1.0)
    assert tape.gradient(w, r) is None


@pytest.fixture(scope="module")
def setup():
    task = MigraineTask()
    model = AlineModel(
        task.num_parameters, task.x_dim, embed_dim=16, num_layers=1, num_heads=2, ff_dim=32, num_components=3
    )
    batch = task.sample_episodes(4, 9, seed=tf.constant([3, 1]), num_predictive_targets=2)
    return task, model, batch


def test_target_log_prob_is_the_masked_mean(setup):
    task, model, batch = setup
    tmask = tf.concat([target_mask(task, "sleep", 2, 2), target_mask(task, "predictive", 2, 2)], 0)
    ctx = {
        "context_x": batch.query_x[:, :3],
        "context_y": batch.query_y[:, :3],
        "context_mask": tf.ones([4, 3], tf.bool),
        "query_x": batch.query_x,
        "target_x": batch.target_x,
        "target_mask": tmask,
    }
    out = model(ctx)
    got = objectives.target_log_prob(model, out, batch, tmask).numpy()
    lq_theta = model.posterior(out).log_prob(batch.theta).numpy()
    lq_y = model.predictive(out).log_prob(batch.target_y[..., 0]).numpy()
    np.testing.assert_allclose(got[:2], lq_theta[:2, :4].mean(1), rtol=1e-5)
    np.testing.assert_allclose(got[2:], lq_y[2:].mean(1), rtol=1e-5)


@pytest.mark.parametrize("mode", ["random", "sample", "greedy"])
def test_rollout_never_repeats_a_candidate(setup, mode):
    task, model, batch = setup
    tmask = target_mask(task, "all", 4, 2)
    noise = choice_noise(tf.constant([1, 2]), 9, 4, 9)
    result = rollout(model, batch, tmask, 9, mode, noise)
    chosen = result.chosen.numpy()
    assert result.logq.shape == (10, 4) and chosen.shape == (9, 4)
    for b in range(4):
        assert sorted(chosen[:, b]) == list(range(9))  # all 9 candidates, each once
    assert bool(tf.reduce_all(result.state.taken)) and np.all(np.isfinite(result.logq.numpy()))
    if mode == "random":
        assert np.all(result.log_pi.numpy() == 0)
    else:
        assert np.all(result.log_pi.numpy() <= 0) and np.all(result.entropy.numpy() >= 0)


def test_rollout_compiles_with_xla_and_matches_graph_mode(setup):
    task, model, batch = setup
    tmask = target_mask(task, "stress", 4, 2)
    noise = choice_noise(tf.constant([5, 6]), 5, 4, 9)
    run = lambda: rollout(model, batch, tmask, 5, "greedy", noise)  # noqa: E731
    graph, xla = tf.function(run)(), tf.function(run, jit_compile=True)()
    np.testing.assert_array_equal(graph.chosen.numpy(), xla.chosen.numpy())
    np.testing.assert_allclose(graph.logq.numpy(), xla.logq.numpy(), atol=1e-5)


def test_gumbel_choice_samples_the_softmax():
    logits = tf.constant([[0.0, 1.0, 2.0, -1e9]])
    taken = tf.constant([[False, False, True, False]])
    picks = np.array(
        [int(choose(logits, taken, choice_noise(tf.constant([i, 0]), 1, 1, 4)[0], "sample")[0]) for i in range(3000)]
    )
    assert not np.any(picks == 2) and not np.any(picks == 3)  # taken, and probability 0
    expected = np.exp([0.0, 1.0]) / np.exp([0.0, 1.0]).sum()
    freq = np.bincount(picks, minlength=4)[:2] / len(picks)
    np.testing.assert_allclose(freq, expected, atol=0.03)
    uniform = [
        int(choose(logits, taken, choice_noise(tf.constant([i, 1]), 1, 1, 4)[0], "random")[0]) for i in range(2000)
    ]
    np.testing.assert_allclose(np.bincount(uniform, minlength=4) / 2000, [1 / 3, 1 / 3, 0, 1 / 3], atol=0.04)
    assert int(choose(logits, taken, tf.zeros([1, 4]), "greedy")[0]) == 1
