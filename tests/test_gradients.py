"""Step-by-step gradients equal the gradients of a tape around the whole rollout."""
import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.model import AlineModel
from tfp_aline.rollout_state import initial_state, observe
from tfp_aline.targets import target_mask
from tfp_aline.tasks.migraine import MigraineTask
from tfp_aline.training import losses
from tfp_aline.training.gradients import state_after, stepwise_gradients
from tfp_aline.training.rollout import choice_noise, rollout


@pytest.fixture(scope="module")
def setup():
    task = MigraineTask()
    model = AlineModel(task.num_parameters, task.x_dim, embed_dim=16, num_layers=2, num_heads=2, ff_dim=32,
                       num_components=3)
    model.build()
    batch = task.sample_episodes(6, 10, seed=tf.constant([4, 2]), num_initial_context=2, num_predictive_targets=3)
    tmask = tf.concat([target_mask(task, "sleep", 2, 3), target_mask(task, "all", 2, 3),
                       target_mask(task, "predictive", 2, 3)], 0)
    return model, batch, tmask


@pytest.mark.parametrize("mode", ["random", "sample"])
def test_stepwise_gradients_equal_backprop_through_the_rollout(setup, mode):
    model, batch, tmask = setup
    horizon, alpha, variables = 6, 0.7, model.trainable_variables
    noise = choice_noise(tf.constant([9, 9]), horizon, 6, 10)

    @tf.function
    def reference():  # one tape around the whole rollout (in a graph, as the trainer ran it)
        with tf.GradientTape() as tape:
            result = rollout(model, batch, tmask, horizon, mode, noise, training=True)
            loss = losses.nll_loss(result.logq)
            weights = None
            if mode == "sample":
                weights = losses.policy_weights(losses.step_rewards(result.logq), 0.9)
                loss += alpha * losses.policy_loss(weights, result.log_pi)
        return tape.gradient(loss, variables), result, weights

    reference, result, weights = reference()
    got = tf.function(lambda: stepwise_gradients(model, batch, tmask, result, weights, alpha, variables))()
    checked = 0
    for r, g, v in zip(reference, got, variables):
        if r is None:
            np.testing.assert_array_equal(g.numpy(), 0, err_msg=v.path)
            continue
        np.testing.assert_allclose(g.numpy(), tf.convert_to_tensor(r).numpy(), rtol=1e-4, atol=1e-6,
                                   err_msg=v.path)
        checked += 1
    assert checked == len([r for r in reference if r is not None]) > 10
    if mode == "random":  # warm-up: the policy head gets nothing
        assert all(np.all(g.numpy() == 0) for g, v in zip(got, variables) if "policy" in v.path)


def test_state_after_rebuilds_every_intermediate_state(setup):
    model, batch, tmask = setup
    horizon = 5
    result = rollout(model, batch, tmask, horizon, "random", choice_noise(tf.constant([1, 1]), horizon, 6, 10))
    state = initial_state(batch, horizon)
    for t in range(horizon + 1):
        rebuilt = state_after(result.state, result.chosen, 2, tf.constant(t))
        np.testing.assert_array_equal(rebuilt.context_mask.numpy(), state.context_mask.numpy())
        np.testing.assert_array_equal(rebuilt.taken.numpy(), state.taken.numpy())
        valid = state.context_mask.numpy()
        np.testing.assert_array_equal(rebuilt.context_x.numpy()[valid], state.context_x.numpy()[valid])
        if t < horizon:
            state = observe(state, batch, result.chosen[t])
