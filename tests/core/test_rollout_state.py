"""Tests of the fixed-shape rollout state: buffer writes, and a compiled select -> observe loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.core.rollout_state import RolloutState, initial_state, model_inputs, observe
from tfp_aline.core.targets import target_mask
from tfp_aline.nn.model import AlineModel

B, N, N0, M, T = 3, 8, 2, 2, 5
TINY = dict(embed_dim=8, num_layers=2, num_heads=2, ff_dim=16, num_components=3)


@pytest.fixture(scope="module")
def episodes(task):
    return task.sample_episodes(B, N, seed=tf.constant([1, 2]), num_initial_context=N0, num_predictive_targets=M)


@pytest.fixture(scope="module")
def model(task):
    keras.utils.set_random_seed(1)
    model = AlineModel(task.num_parameters, task.x_dim, **TINY)
    model.build()
    return model


def rollout(model, batch, mask, horizon, greedy, seed):
    """T select -> observe steps over a graph loop; returns the final state and posterior outputs."""
    state = initial_state(batch, horizon)
    for t in tf.range(horizon):
        outputs = model(model_inputs(state, batch, mask))
        index = model.select(
            outputs, state.taken, greedy=greedy, seed=tf.random.experimental.stateless_fold_in(seed, t)
        )
        state = observe(state, batch, index)
    return state, model(model_inputs(state, batch, mask), compute_policy=False)


def test_initial_state(episodes):
    state = initial_state(episodes, T)
    assert isinstance(state, RolloutState)
    assert state.context_x.shape == (B, N0 + T, 20) and state.context_y.shape == (B, N0 + T, 1)
    np.testing.assert_array_equal(state.context_x[:, :N0], episodes.context_x)
    np.testing.assert_array_equal(state.context_y[:, :N0], episodes.context_y)
    assert np.all(state.context_x[:, N0:].numpy() == 0)
    assert state.context_mask.numpy().tolist() == [[True] * N0 + [False] * T] * B
    assert state.taken.shape == (B, N) and not state.taken.numpy().any()
    assert state.step.dtype == tf.int32 and int(state.step) == 0


def test_observe_writes_next_slot(episodes):
    state = initial_state(episodes, T)
    first, second = tf.constant([4, 0, 7]), tf.constant([1, 1, 2])
    state = observe(observe(state, episodes, first), episodes, second)
    assert int(state.step) == 2
    for b in range(B):
        for slot, chosen in ((N0, first[b]), (N0 + 1, second[b])):
            np.testing.assert_array_equal(state.context_x[b, slot], episodes.query_x[b, chosen])
            np.testing.assert_array_equal(state.context_y[b, slot], episodes.query_y[b, chosen])
        assert np.flatnonzero(state.taken[b]).tolist() == sorted({int(first[b]), int(second[b])})
    assert state.context_mask.numpy().tolist() == [[True] * (N0 + 2) + [False] * (T - 2)] * B
    np.testing.assert_array_equal(state.context_x[:, :N0], episodes.context_x)
    assert np.all(state.context_x[:, N0 + 2 :].numpy() == 0)


def test_model_inputs(task, episodes):
    mask = target_mask(task, "sleep", B, M)
    inputs = model_inputs(initial_state(episodes, T), episodes, mask)
    assert set(inputs) == {"context_x", "context_y", "context_mask", "query_x", "target_x", "target_mask"}
    assert inputs["target_mask"].dtype == tf.bool and inputs["query_x"] is episodes.query_x


def test_compiled_rollout_matches_eager(model, task, episodes):
    mask = target_mask(task, "all", B, M)
    seed = tf.constant([3, 4])
    eager_state, eager_out = rollout(model, episodes, mask, T, True, seed)
    compiled = tf.function(lambda batch, mask: rollout(model, batch, mask, T, True, seed), jit_compile=True)
    state, out = compiled(episodes, mask)
    for a, b in zip(eager_state, state):
        np.testing.assert_allclose(a, b, atol=1e-5)
    for key in eager_out:
        np.testing.assert_allclose(eager_out[key], out[key], atol=1e-5, err_msg=key)
    assert int(state.step) == T and state.context_mask.numpy().all()
    assert np.all(state.taken.numpy().sum(-1) == T)  # T distinct candidates per episode
    # A new target reuses the compiled rollout.
    compiled(episodes, target_mask(task, "stress", B, M))
    assert compiled.experimental_get_tracing_count() == 1
    # The T steps are one graph loop, not T unrolled copies (compile time must not grow with T).
    graph = compiled.get_concrete_function(episodes, mask).graph
    assert sum(op.type in ("While", "StatelessWhile") for op in graph.get_operations()) == 1


def test_sampled_rollout_never_repeats_a_candidate(model, task):
    horizon = 6
    batch = task.sample_episodes(16, horizon, seed=tf.constant([5, 6]))  # the whole pool gets taken
    run = tf.function(
        lambda batch: rollout(model, batch, target_mask(task, "all", 16, 0), horizon, False, tf.constant([7, 8])),
        jit_compile=True,
    )
    state, out = run(batch)
    assert state.taken.numpy().all() and state.context_mask.numpy().all()
    picked = np.sort(state.context_x.numpy(), axis=1)
    np.testing.assert_array_equal(picked, np.sort(batch.query_x.numpy(), axis=1))
    assert np.all(np.isfinite(out["mixture_locs"].numpy()))
