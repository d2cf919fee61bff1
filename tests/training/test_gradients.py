"""Step-by-step gradients equal the gradients of a tape around the whole rollout; the k-step
estimate is unbiased; the inference loss reaches every parameter at every step."""

import itertools

import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.core import objectives
from tfp_aline.core.choice import choice_noise
from tfp_aline.core.rollout import random_choices, rollout, state_from_choices
from tfp_aline.core.rollout_state import initial_state, observe, state_after
from tfp_aline.core.targets import target_mask
from tfp_aline.migraine.task import MigraineTask
from tfp_aline.nn.model import AlineModel
from tfp_aline.training.gradients import sample_steps, stepwise_gradients


@pytest.fixture(scope="module")
def setup():
    task = MigraineTask()
    model = AlineModel(
        task.num_parameters, task.x_dim, embed_dim=16, num_layers=2, num_heads=2, ff_dim=32, num_components=3
    )
    model.build()
    batch = task.sample_episodes(6, 10, seed=tf.constant([4, 2]), num_initial_context=2, num_predictive_targets=3)
    tmask = tf.concat(
        [target_mask(task, "sleep", 2, 3), target_mask(task, "all", 2, 3), target_mask(task, "predictive", 2, 3)], 0
    )
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
            loss = objectives.nll_loss(result.inference_logq)
            weights = None
            if mode == "sample":
                weights = objectives.policy_weights(objectives.step_rewards(result.logq), 0.9)
                loss += alpha * objectives.policy_loss(weights, result.log_pi)
        return tape.gradient(loss, variables), result, weights

    reference, result, weights = reference()
    got, _, _ = tf.function(
        lambda: stepwise_gradients(model, batch, tmask, result.state, result.chosen, weights, alpha, variables)
    )()
    checked = 0
    for r, g, v in zip(reference, got, variables):
        if r is None:
            np.testing.assert_array_equal(g.numpy(), 0, err_msg=v.path)
            continue
        np.testing.assert_allclose(g.numpy(), tf.convert_to_tensor(r).numpy(), rtol=1e-4, atol=1e-6, err_msg=v.path)
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


def _grads(model, batch, tmask, result, weights, steps, alpha=0.7):
    fn = tf.function(
        lambda: stepwise_gradients(
            model, batch, tmask, result.state, result.chosen, weights, alpha, model.trainable_variables, steps=steps
        )[0]
    )
    return [g.numpy() for g in fn()]


@pytest.mark.parametrize("mode", ["random", "sample"])
def test_k_step_estimate_is_unbiased_over_all_step_sets(setup, mode):
    model, batch, tmask = setup
    horizon, k = 3, 2
    result = rollout(model, batch, tmask, horizon, mode, choice_noise(tf.constant([3, 3]), horizon, 6, 10))
    weights = None
    if mode == "sample":
        weights = objectives.policy_weights(objectives.step_rewards(result.logq), 0.9)
    full = _grads(model, batch, tmask, result, weights, None)
    subsets = list(itertools.combinations(range(horizon + 1), k))  # every set of k of the T + 1 steps
    estimates = [_grads(model, batch, tmask, result, weights, tf.constant(s, tf.int32)) for s in subsets]
    mean = [np.mean([e[i] for e in estimates], axis=0) for i in range(len(full))]
    for f, m in zip(full, mean):
        np.testing.assert_allclose(m, f, rtol=1e-4, atol=1e-6)
    # and a single estimate is not the full gradient (the test would pass trivially otherwise)
    assert max(np.abs(e - f).max() for e, f in zip(estimates[0], full)) > 1e-4


def test_sample_steps_are_distinct_sorted_and_cover_every_step():
    seen = np.zeros(7)
    for i in range(300):
        s = sample_steps(tf.constant([i, 5]), 6, 3).numpy()
        assert len(set(s)) == 3 and list(s) == sorted(s) and s.min() >= 0 and s.max() <= 6
        seen[s] += 1
    np.testing.assert_allclose(seen / 300, 3 / 7, atol=0.1)  # each step with probability k / (T + 1)
    np.testing.assert_array_equal(sample_steps(tf.constant([0, 0]), 6, 0).numpy(), np.arange(7))


def test_nll_reaches_parameters_outside_the_target_and_step_zero(setup):
    """An episode targeting 'sleep' still trains the other weights' marginals, and step 0 alone
    (no data yet) has a gradient: the loss scores every parameter at every step."""
    model, batch, _ = setup
    task = MigraineTask()
    tmask = target_mask(task, "sleep", 6, 3)
    sleep = set(task.parameter_indices("sleep"))
    other = next(i for i in range(task.num_parameters) if i not in sleep)
    theta = tf.Variable(batch.theta)
    result = rollout(model, batch, tmask, 2, "random", choice_noise(tf.constant([1, 4]), 2, 6, 10))
    with tf.GradientTape() as tape:
        b = batch._replace(theta=theta)
        out = model(
            {
                "context_x": result.state.context_x,
                "context_y": result.state.context_y,
                "context_mask": tf.zeros_like(result.state.context_mask),
                "query_x": b.query_x,
                "target_x": b.target_x,
                "target_mask": tmask,
            },
            compute_policy=False,
        )
        loss = -tf.reduce_mean(objectives.inference_log_prob(model, out, b))
    g = tape.gradient(loss, theta).numpy()
    assert np.all(np.abs(g[:, other]) > 0)  # a parameter outside the target gets NLL gradient
    step0 = _grads(model, batch, tmask, result, None, tf.constant([0]))
    variables = model.trainable_variables
    head = [gr for gr, v in zip(step0, variables) if "inference_head" in v.path]
    assert head and max(np.abs(gr).max() for gr in head) > 0  # the step-0 term is present


def test_policy_loss_never_reaches_the_inference_head(setup):
    model, batch, tmask = setup
    result = rollout(model, batch, tmask, 4, "sample", choice_noise(tf.constant([2, 2]), 4, 6, 10))
    weights = objectives.policy_weights(objectives.step_rewards(result.logq), 0.9)
    with_pg = _grads(model, batch, tmask, result, weights, None, alpha=1.0)
    without = _grads(model, batch, tmask, result, weights, None, alpha=0.0)
    variables = model.trainable_variables
    for a, b, v in zip(with_pg, without, variables):
        if "inference_head" in v.path or "predictive_head" in v.path:
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7, err_msg=v.path)
    assert any(np.abs(a - b).max() > 1e-6 for a, b, v in zip(with_pg, without, variables) if "policy_head" in v.path)


def test_warmup_choices_known_up_front_match_observing_them(setup):
    model, batch, tmask = setup
    horizon = 5
    noise = choice_noise(tf.constant([7, 1]), horizon, 6, 10)
    chosen = random_choices(noise, horizon).numpy()
    assert chosen.shape == (horizon, 6)
    assert all(len(set(chosen[:, b])) == horizon for b in range(6))  # never twice
    state = initial_state(batch, horizon)
    for t in range(horizon):
        state = observe(state, batch, chosen[t])
    direct = state_from_choices(batch, tf.constant(chosen))
    for a, b in zip(state, direct):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
