"""Tests of AlineModel: attention rule, symmetries, tfd edges, serialization, XLA, gradient routing, targets."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.core.targets import target_mask
from tfp_aline.errors import ConfigError
from tfp_aline.nn.model import AlineModel

B, N, N0, M, PAD = 3, 6, 4, 5, 2
TINY = dict(embed_dim=8, num_layers=2, num_heads=2, ff_dim=16, num_components=3)
POSTERIOR_KEYS = ("mixture_logits", "mixture_locs", "mixture_scales", "predictive_logits")


@pytest.fixture(scope="module")
def model(task):
    keras.utils.set_random_seed(0)
    model = AlineModel(task.num_parameters, task.x_dim, **TINY)
    model.build()
    return model


@pytest.fixture(scope="module")
def episodes(task):
    return task.sample_episodes(B, N, seed=tf.constant([1, 2]), num_initial_context=N0, num_predictive_targets=M)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def make_inputs(episodes, mask, rng=None, pad=PAD):
    """Inputs with the N0 initial points plus `pad` invalid slots (filled with junk if rng is given)."""
    b = episodes.theta.shape[0]
    junk_x = np.zeros([b, pad, episodes.context_x.shape[-1]], np.float32)
    junk_y = np.zeros([b, pad, 1], np.float32)
    if rng is not None:
        junk_x, junk_y = 50 * rng.normal(size=junk_x.shape), rng.integers(0, 2, junk_y.shape)
    context_mask = tf.concat([tf.ones([b, episodes.context_x.shape[1]], tf.bool), tf.zeros([b, pad], tf.bool)], 1)
    return {
        "context_x": tf.concat([episodes.context_x, tf.cast(junk_x, tf.float32)], 1),
        "context_y": tf.concat([episodes.context_y, tf.cast(junk_y, tf.float32)], 1),
        "context_mask": context_mask,
        "query_x": episodes.query_x,
        "target_x": episodes.target_x,
        "target_mask": mask,
    }


def assert_outputs_close(a, b, keys, atol=1e-6):
    for key in keys:
        np.testing.assert_allclose(a[key], b[key], atol=atol, err_msg=key)


@pytest.fixture(scope="module")
def all_targets(task):
    return target_mask(task, "all", B, M)


# --- attention rule -------------------------------------------------------------------------------


def test_targets_do_not_see_the_query_set(model, episodes, all_targets, rng):
    inputs = make_inputs(episodes, all_targets)
    other = dict(inputs, query_x=tf.constant(rng.normal(size=[B, 9, episodes.query_x.shape[-1]]), tf.float32))
    out, out_other = model(inputs), model(other)
    assert out_other["policy_logits"].shape == (B, 9)
    assert_outputs_close(out, out_other, POSTERIOR_KEYS)


def test_padded_context_slots_change_no_output(model, episodes, all_targets, rng):
    clean, junk = model(make_inputs(episodes, all_targets)), model(make_inputs(episodes, all_targets, rng))
    assert_outputs_close(clean, junk, POSTERIOR_KEYS + ("policy_logits",))


def test_active_target_steers_policy_but_not_posterior(model, task, episodes):
    sleep = model(make_inputs(episodes, target_mask(task, "sleep", B, M)))
    everything = model(make_inputs(episodes, target_mask(task, "all", B, M)))
    assert_outputs_close(sleep, everything, POSTERIOR_KEYS)
    assert np.max(np.abs(sleep["policy_logits"] - everything["policy_logits"])) > 1e-4


def test_invariant_to_context_order_and_equivariant_to_candidate_order(model, episodes, all_targets, rng):
    inputs = make_inputs(episodes, all_targets, rng)
    out = model(inputs)
    context_order = rng.permutation(N0 + PAD)  # padded slots move too
    candidate_order = rng.permutation(N)
    shuffled = dict(
        inputs, **{k: tf.gather(inputs[k], context_order, axis=1) for k in ("context_x", "context_y", "context_mask")}
    )
    shuffled["query_x"] = tf.gather(inputs["query_x"], candidate_order, axis=1)
    out_shuffled = model(shuffled)
    assert_outputs_close(out, out_shuffled, POSTERIOR_KEYS, atol=1e-5)
    np.testing.assert_allclose(
        tf.gather(out["policy_logits"], candidate_order, axis=1), out_shuffled["policy_logits"], atol=1e-5
    )


def test_compute_policy_false_skips_queries(model, episodes, all_targets):
    inputs = make_inputs(episodes, all_targets)
    without_queries = {k: v for k, v in inputs.items() if k != "query_x"}
    out = model(without_queries, compute_policy=False)
    assert "policy_logits" not in out
    assert_outputs_close(out, model(inputs), POSTERIOR_KEYS)
    with pytest.raises(ValueError, match="query_x"):
        model(without_queries)


def test_query_tokens_embedded_once_give_the_same_outputs(model, episodes, all_targets):
    inputs = make_inputs(episodes, all_targets)
    want = model(inputs)
    tokens = model.embed_queries(episodes.query_x)
    assert tokens.shape == (B, N, TINY["embed_dim"])
    hoisted = {**{k: v for k, v in inputs.items() if k != "query_x"}, "query_tokens": tokens}
    got = model(hoisted)
    assert_outputs_close(got, want, POSTERIOR_KEYS + ("policy_logits",), atol=0)
    # the tokens, not query_x, are what the policy reads when both are given
    # (a perturbation per element: layer norm would undo a shift or scale of the whole token)
    noise = tf.random.stateless_normal(tokens.shape, seed=[0, 1])
    shifted = model({**inputs, "query_tokens": tokens + noise})
    assert not np.allclose(shifted["policy_logits"], want["policy_logits"])


# --- shapes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("batch_size", [1, 7])
@pytest.mark.parametrize("num_candidates", [1, 200])
@pytest.mark.parametrize("target", ["all", (20,)])
def test_output_shapes_and_empty_context(model, task, batch_size, num_candidates, target):
    episodes = task.sample_episodes(
        batch_size, num_candidates, seed=tf.constant([3, 4]), num_initial_context=0, num_predictive_targets=2
    )
    inputs = make_inputs(episodes, target_mask(task, target, batch_size, 2), pad=3)  # t = 0: nothing valid
    out = model(inputs)
    k, lp = TINY["num_components"], task.num_parameters
    expected = {
        "mixture_logits": (batch_size, lp, k),
        "mixture_locs": (batch_size, lp, k),
        "mixture_scales": (batch_size, lp, k),
        "predictive_logits": (batch_size, 2),
        "policy_logits": (batch_size, num_candidates),
    }
    assert {key: tuple(v.shape) for key, v in out.items()} == expected
    for value in out.values():
        assert np.all(np.isfinite(value.numpy()))
    assert model.posterior(out).batch_shape == (batch_size, lp)
    assert model.predictive(out).batch_shape == (batch_size, 2)
    assert model.policy(out, tf.zeros([batch_size, num_candidates], tf.bool)).batch_shape == (batch_size,)


def test_no_predictive_targets(model, task):
    episodes = task.sample_episodes(2, 4, seed=tf.constant([5, 6]), num_initial_context=1)
    out = model(make_inputs(episodes, target_mask(task, "stress", 2, 0)))
    assert out["predictive_logits"].shape == (2, 0)


# --- tfd edges ------------------------------------------------------------------------------------


def test_policy_masks_taken_candidates(model, task):
    batch = task.sample_episodes(4, 12, seed=tf.constant([7, 8]), num_initial_context=2)
    out = model(make_inputs(batch, target_mask(task, "all", 4, 0)))
    taken = tf.constant(np.random.default_rng(1).random([4, 12]) < 0.5)
    policy = model.policy(out, taken)
    probs = policy.probs_parameter().numpy()
    assert np.all(probs[taken.numpy()] == 0.0)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
    assert np.all(np.isfinite(policy.entropy().numpy()))
    masked = np.where(taken.numpy(), -np.inf, out["policy_logits"].numpy())
    np.testing.assert_array_equal(model.select(out, taken, greedy=True), masked.argmax(-1))
    draws = np.stack([model.select(out, taken, greedy=False, seed=tf.constant([i, 0])).numpy() for i in range(300)])
    assert draws.dtype == np.int32 and draws.shape == (300, 4)
    assert not np.any(np.take_along_axis(np.broadcast_to(taken.numpy(), (300, 4, 12)), draws[..., None], -1))
    assert len(np.unique(draws)) > 4  # it samples, not always the argmax
    np.testing.assert_array_equal(
        model.select(out, taken, greedy=False, seed=tf.constant([9, 9])),
        model.select(out, taken, greedy=False, seed=tf.constant([9, 9])),
    )
    with pytest.raises(ValueError, match="seed"):
        model.select(out, taken, greedy=False)


def test_mixture_density_integrates_to_one(model, episodes, all_targets):
    out = model(make_inputs(episodes, all_targets), compute_policy=False)
    one = {k: v[:1, 3:4] for k, v in out.items()}  # episode 0, parameter 3
    locs, scales = one["mixture_locs"].numpy(), one["mixture_scales"].numpy()
    grid = np.linspace((locs - 12 * scales).min(), (locs + 12 * scales).max(), 200_001)
    density = np.exp(model.posterior(one).log_prob(grid[:, None, None].astype(np.float32)).numpy()[:, 0, 0])
    assert abs(np.trapezoid(density, grid) - 1.0) < 1e-3


def test_predictive_is_bernoulli_over_targets(model, episodes, all_targets):
    out = model(make_inputs(episodes, all_targets))
    predictive = model.predictive(out)
    p1 = predictive.prob(tf.ones([B, M])).numpy()
    np.testing.assert_allclose(p1 + predictive.prob(tf.zeros([B, M])).numpy(), 1.0, atol=1e-6)
    np.testing.assert_allclose(p1, tf.sigmoid(out["predictive_logits"]), atol=1e-6)


# --- serialization and compilation ----------------------------------------------------------------


def test_config_round_trip(model):
    config = model.get_config()
    for name, value in dict(num_parameters=21, x_dim=20, y_dim=1, min_scale=1e-3, **TINY).items():
        assert config[name] == value
    assert AlineModel.from_config(config).get_config() == config


def test_keras_file_round_trip(model, episodes, all_targets, tmp_path):
    path = tmp_path / "aline.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, AlineModel)
    inputs = make_inputs(episodes, all_targets)
    assert_outputs_close(model(inputs), loaded(inputs), POSTERIOR_KEYS + ("policy_logits",), atol=0)


def test_late_queries_save_and_load_with_the_model(episodes, all_targets, tmp_path):
    late = AlineModel(21, 20, query_layers=1, **TINY)
    late.build()
    late.save(tmp_path / "late.keras")
    loaded = keras.saving.load_model(tmp_path / "late.keras")
    assert loaded.query_layers == 1 and loaded.transformer.query_layers == 1
    inputs = make_inputs(episodes, all_targets)
    assert_outputs_close(late(inputs), loaded(inputs), POSTERIOR_KEYS + ("policy_logits",), atol=0)


def test_checkpoint_round_trip(model, episodes, all_targets, tmp_path):
    path = tf.train.Checkpoint(model=model).write(str(tmp_path / "ckpt"))
    saved = [name for name, _ in tf.train.list_variables(path) if name.startswith("model/")]
    assert len(saved) == len(model.variables)  # every weight, including each transformer layer's
    restored = AlineModel(21, 20, **TINY)
    restored.build()
    inputs = make_inputs(episodes, all_targets)
    assert np.max(np.abs(restored(inputs)["mixture_locs"] - model(inputs)["mixture_locs"])) > 1e-4
    tf.train.Checkpoint(model=restored).read(path).assert_consumed()
    assert_outputs_close(model(inputs), restored(inputs), POSTERIOR_KEYS + ("policy_logits",), atol=0)


def test_xla_forward_matches_eager(model, episodes, all_targets):
    inputs = make_inputs(episodes, all_targets)
    compiled = tf.function(lambda x: model(x), jit_compile=True)
    assert_outputs_close(model(inputs), compiled(inputs), POSTERIOR_KEYS + ("policy_logits",), atol=1e-5)


def test_target_switch_does_not_retrace(model, task, episodes):
    forward = tf.function(lambda x: model(x))
    a = forward(make_inputs(episodes, target_mask(task, "sleep", B, M)))
    b = forward(make_inputs(episodes, target_mask(task, "predictive", B, M)))
    assert forward.experimental_get_tracing_count() == 1
    assert np.max(np.abs(a["policy_logits"] - b["policy_logits"])) > 1e-4


def test_heads_compute_in_float32_under_mixed_precision(episodes, all_targets):
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        mixed = AlineModel(21, 20, **TINY)
        out = mixed(make_inputs(episodes, all_targets))
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    assert mixed.transformer.compute_dtype == "float16"
    for value in out.values():
        assert value.dtype == tf.float32 and np.all(np.isfinite(value.numpy()))


# --- gradient routing -----------------------------------------------------------------------------


def _grad_norms(tape, loss, variables):
    grads = tape.gradient(loss, variables)
    return [None if g is None else float(tf.norm(tf.convert_to_tensor(g))) for g in grads]


def test_policy_loss_never_reaches_inference_head(model, episodes, all_targets):
    inputs = make_inputs(episodes, all_targets)
    taken = tf.zeros([B, N], tf.bool)
    with tf.GradientTape(persistent=True) as tape:
        out = model(inputs)
        nll = -tf.reduce_mean(model.posterior(out).log_prob(episodes.theta))
        chosen = model.select(out, taken, greedy=False, seed=tf.constant([1, 1]))
        reward = tf.stop_gradient(tf.random.stateless_normal([B], seed=[2, 2]))
        surrogate = -tf.reduce_mean(reward * model.policy(out, taken).log_prob(chosen))
    shared = model.embedder.trainable_variables + model.transformer.trainable_variables
    for norm, var in zip(
        _grad_norms(tape, nll, shared + model.inference_head.trainable_variables),
        shared + model.inference_head.trainable_variables,
    ):
        assert norm is not None and norm > 0, var.path
    for norm in _grad_norms(tape, surrogate, model.inference_head.trainable_variables):
        assert norm is None or norm == 0.0
    assert all(n is not None and n > 0 for n in _grad_norms(tape, surrogate, model.policy_head.trainable_variables))
    assert all(n is not None and n > 0 for n in _grad_norms(tape, surrogate, model.transformer.trainable_variables))


# --- targets --------------------------------------------------------------------------------------


def test_target_mask_specs(task):
    groups = task.parameter_groups
    lp = task.num_parameters
    assert target_mask(task, None, 2, 3).numpy().tolist() == [[True] * lp + [False] * 3] * 2
    sleep = target_mask(task, "sleep", 2, 0).numpy()
    assert sleep.shape == (2, lp) and set(np.flatnonzero(sleep[0])) == set(groups["sleep"])
    assert set(np.flatnonzero(target_mask(task, [0, 5], 1, 0).numpy()[0])) == {0, 5}
    union = target_mask(task, ("sleep", "stress"), 1, 0).numpy()[0]
    assert set(np.flatnonzero(union)) == set(groups["sleep"]) | set(groups["stress"])
    name = task.parameter_names[7]
    assert np.flatnonzero(target_mask(task, (name,), 1, 0).numpy()[0]).tolist() == [7]
    predictive = target_mask(task, "predictive", 1, 4).numpy()[0]
    assert not predictive[:lp].any() and predictive[lp:].all()


def test_per_episode_targets(task):
    mask = target_mask(task, ["sleep", "predictive", None, [3]], 4, 2).numpy()
    lp = task.num_parameters
    assert set(np.flatnonzero(mask[0])) == set(task.parameter_groups["sleep"])
    assert np.flatnonzero(mask[1]).tolist() == [lp, lp + 1]
    assert mask[2, :lp].all() and not mask[2, lp:].any()
    assert np.flatnonzero(mask[3]).tolist() == [3]


def test_bad_targets_are_config_errors(task):
    with pytest.raises(ConfigError, match="predictive"):
        target_mask(task, "predictive", 2, 0)
    with pytest.raises(ConfigError, match="per-episode"):
        target_mask(task, ["sleep", "stress"], 3, 0)
    with pytest.raises(ConfigError):
        target_mask(task, "no_such_group", 1, 0)
