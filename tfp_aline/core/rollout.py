"""The T-step rollout as one graph loop: choose a candidate, observe it, update the posterior."""

from typing import NamedTuple

import tensorflow as tf

from tfp_aline.core.choice import check_mode, choose
from tfp_aline.core.objectives import inference_log_prob, target_log_prob
from tfp_aline.core.rollout_state import RolloutState, initial_state, model_inputs, observe


class RolloutResult(NamedTuple):
    """Per-step record of a rollout (step 0 is the context before any query).

    logq:    [T + 1, B] mean log q of the true target values after t queries (the reward's)
    inference_logq: [T + 1, B] mean log q over every parameter and predictive token (the NLL's)
    log_pi:  [T, B] log pi(x_t | D_{t-1}) of the chosen candidates (0 in 'random' mode)
    entropy: [T, B] entropy of the policy at each choice (0 in 'random' mode)
    chosen:  [T, B] int32 indices of the chosen candidates
    state:   the final RolloutState
    """

    logq: tf.Tensor
    inference_logq: tf.Tensor
    log_pi: tf.Tensor
    entropy: tf.Tensor
    chosen: tf.Tensor
    state: RolloutState


def rollout(model, batch, target_mask, horizon: int, mode: str, noise, training=False):
    """Run T steps of acquisition on a batch of episodes.

    One `tf.while_loop`, so graph size and compile time do not grow with T.

    Args:
        model: an `AlineModel`.
        batch: the `EpisodeBatch` (B episodes, N candidates each).
        target_mask: [B, L + M] bool, the episodes' targets.
        horizon: T, the number of queries.
        mode: 'random' (uniform among untaken; the query path is not computed at all), 'sample'
            (draw from the policy) or 'greedy' (the policy's argmax).
        noise: [T, B, N] from `choice_noise`.
        training: passed to the model's layers.

    Returns:
        A `RolloutResult`: per-step log q [T + 1, B], log pi, entropy and choices [T, B], and the final state.
    """
    use_policy = check_mode(mode) != "random"  # checked here too: before the loop is traced
    # The pool is fixed for the episode, so its tokens are embedded once, not at every step.
    query_tokens = model.embed_queries(batch.query_x) if use_policy else None

    def forward(state):
        inputs = model_inputs(state, batch, target_mask)
        if use_policy:
            inputs["query_tokens"] = query_tokens
        out = model(inputs, compute_policy=use_policy, training=training)
        logits = out["policy_logits"] if use_policy else tf.zeros(tf.shape(state.taken), tf.float32)
        return (
            target_log_prob(model, out, batch, target_mask),
            inference_log_prob(model, out, batch),
            tf.cast(logits, tf.float32),
        )

    state = initial_state(batch, horizon)
    logq0, inf0, logits0 = forward(state)
    size = dict(size=horizon, element_shape=logq0.shape)
    arrays = (
        tf.TensorArray(tf.float32, **size),
        tf.TensorArray(tf.float32, **size),
        tf.TensorArray(tf.float32, **size),
        tf.TensorArray(tf.float32, **size),
        tf.TensorArray(tf.int32, **size),
    )

    def body(t, state, logits, logq_ta, inf_ta, logpi_ta, ent_ta, chosen_ta):
        index = choose(logits, state.taken, noise[t], mode)
        if use_policy:
            policy = model.policy({"policy_logits": logits}, state.taken)
            log_pi, entropy = policy.log_prob(index), policy.entropy()
        else:
            log_pi = entropy = tf.zeros(tf.shape(index), tf.float32)
        state = observe(state, batch, index)
        logq, inf, logits = forward(state)
        return (
            t + 1,
            state,
            logits,
            logq_ta.write(t, logq),
            inf_ta.write(t, inf),
            logpi_ta.write(t, log_pi),
            ent_ta.write(t, entropy),
            chosen_ta.write(t, index),
        )

    _, state, _, logq_ta, inf_ta, logpi_ta, ent_ta, chosen_ta = tf.while_loop(
        lambda t, *_: t < horizon, body, (tf.constant(0), state, logits0, *arrays), maximum_iterations=horizon
    )
    return RolloutResult(
        logq=tf.concat([logq0[None], logq_ta.stack()], 0),
        inference_logq=tf.concat([inf0[None], inf_ta.stack()], 0),
        log_pi=logpi_ta.stack(),
        entropy=ent_ta.stack(),
        chosen=chosen_ta.stack(),
        state=state,
    )


def random_choices(noise, horizon: int):
    """Uniform choices without replacement for a whole episode, known up front.

    The top T of one row of Gumbel noise are a uniformly random ordered subset of the pool, so
    warm-up needs no forward rollout to know its queries.

    Args:
        noise: [T, B, N] from `choice_noise`.
        horizon: T.

    Returns:
        [T, B] int32 candidate indices.
    """
    return tf.transpose(tf.math.top_k(noise[0], horizon).indices)


def state_from_choices(batch, chosen) -> RolloutState:
    """The state after observing `chosen` in order, without running the model.

    Args:
        batch: the `EpisodeBatch`.
        chosen: [T, B] int32 candidate indices.

    Returns:
        The `RolloutState` after the T observations.
    """
    horizon = chosen.shape[0]
    index = tf.transpose(chosen)  # [B, T]
    taken = tf.reduce_any(tf.one_hot(index, tf.shape(batch.query_x)[1], on_value=True, off_value=False), axis=1)
    context_x = tf.concat([batch.context_x, tf.gather(batch.query_x, index, batch_dims=1)], axis=1)
    context_y = tf.concat([batch.context_y, tf.gather(batch.query_y, index, batch_dims=1)], axis=1)
    mask = tf.ones(tf.shape(context_x)[:2], tf.bool)
    return RolloutState(context_x, context_y, mask, taken, tf.constant(horizon, tf.int32))
