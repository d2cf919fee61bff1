"""Fixed-shape state of a T-step rollout, so the whole loop compiles into one graph."""

from typing import NamedTuple

import tensorflow as tf

from tfp_aline.core.episodes import EpisodeBatch


class RolloutState(NamedTuple):
    """What an episode has observed so far; shapes never change during a rollout.

    context_x:    [B, C, Dx] context buffer, C = N0 + T (initial context, then one slot per step)
    context_y:    [B, C, Dy]
    context_mask: [B, C] bool, valid (filled) slots
    taken:        [B, N] bool, candidates already queried
    step:         int32 scalar, number of queries made so far
    """

    context_x: tf.Tensor
    context_y: tf.Tensor
    context_mask: tf.Tensor
    taken: tf.Tensor
    step: tf.Tensor


def initial_state(batch: EpisodeBatch, horizon: int) -> RolloutState:
    """State before the first query: the N0 initial context points valid, T empty slots, nothing taken."""
    num_initial = batch.context_x.shape[1]
    batch_size = tf.shape(batch.query_x)[0]
    free = [[0, 0], [0, horizon], [0, 0]]
    context_mask = tf.concat(
        [tf.ones([batch_size, num_initial], tf.bool), tf.zeros([batch_size, horizon], tf.bool)], axis=1
    )
    return RolloutState(
        context_x=tf.pad(batch.context_x, free),
        context_y=tf.pad(batch.context_y, free),
        context_mask=context_mask,
        taken=tf.zeros(tf.shape(batch.query_x)[:2], tf.bool),
        step=tf.constant(0, tf.int32),
    )


def observe(state: RolloutState, batch: EpisodeBatch, index) -> RolloutState:
    """Reveal candidate `index` ([B] int) of each episode: write its x, y into slot N0 + step.

    The caller must keep step < T; a step beyond the buffer writes nothing (shapes are fixed).
    """
    index = tf.cast(index, tf.int32)
    slot = batch.context_x.shape[1] + state.step
    capacity = tf.shape(state.context_mask)[1]
    # A [C] selector applied with tf.where keeps every shape static (XLA-friendly, no scatter).
    in_slot = tf.equal(tf.range(capacity), slot)
    chosen = tf.equal(tf.range(tf.shape(state.taken)[1])[None, :], index[:, None])
    new_x = tf.gather(batch.query_x, index, batch_dims=1)
    new_y = tf.gather(batch.query_y, index, batch_dims=1)
    return RolloutState(
        context_x=tf.where(in_slot[None, :, None], new_x[:, None, :], state.context_x),
        context_y=tf.where(in_slot[None, :, None], new_y[:, None, :], state.context_y),
        context_mask=state.context_mask | in_slot[None, :],
        taken=state.taken | chosen,
        step=state.step + 1,
    )


def model_inputs(state: RolloutState, batch: EpisodeBatch, target_mask) -> dict:
    """The `AlineModel` inputs dict for the current state; target_mask [B, L + M] bool."""
    return {
        "context_x": state.context_x,
        "context_y": state.context_y,
        "context_mask": state.context_mask,
        "query_x": batch.query_x,
        "target_x": batch.target_x,
        "target_mask": tf.cast(target_mask, tf.bool),
    }


def state_after(final: RolloutState, chosen, num_initial: int, t) -> RolloutState:
    """The rollout state after t queries, rebuilt from the final state and the choices.

    final: the state after T queries; chosen: [T, B] int32; t: int32 scalar. Slots written after
    step t stay in the buffer but are masked out, and masked slots have no effect on the model.
    """
    capacity = tf.shape(final.context_mask)[1]
    horizon, num_candidates = tf.shape(chosen)[0], tf.shape(final.taken)[1]
    valid = final.context_mask & (tf.range(capacity) < num_initial + t)[None, :]
    earlier = (tf.range(horizon) < t)[:, None, None]  # [T, 1, 1]
    taken = tf.reduce_any(tf.one_hot(chosen, num_candidates, on_value=True, off_value=False) & earlier, axis=0)
    return RolloutState(final.context_x, final.context_y, valid, taken, t)
