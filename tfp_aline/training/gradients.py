"""Exact gradients of the ALINE loss accumulated one rollout step at a time (memory of one step).

The chosen candidates are discrete, so they are constants for the gradient: the state after t
queries is a fixed input, and the loss
    L = (1/T) sum_{t=1..T} -mean_b log q(target | D_t) + alpha (1/T) sum_{t=0..T-1} -mean_b w_t log pi(x_{t+1} | D_t)
is a sum of terms that each need the network at one state only. Differentiating step by step
therefore gives the same gradient as a tape around the whole rollout, while keeping only one
step's activations alive (the tape around a T-step loop keeps all T).
"""
import tensorflow as tf

from tfp_aline.rollout_state import RolloutState, model_inputs
from tfp_aline.training.losses import target_log_prob


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


def stepwise_gradients(model, batch, target_mask, result, weights, alpha, variables, scale=1.0):
    """Gradients of scale * (NLL + alpha * policy loss) for a finished rollout.

    result: the `RolloutResult` of the rollout (its choices and final state); weights: [T, B]
    policy-gradient weights, or None in warm-up (then the query path is not computed).
    Returns a list of tensors aligned with `variables` (zeros where a variable is not reached).
    """
    horizon = result.chosen.shape[0] or tf.shape(result.chosen)[0]
    num_initial = batch.context_x.shape[1]
    use_policy = weights is not None
    t_float = tf.cast(horizon, tf.float32)

    def body(t, acc):
        state = state_after(result.state, result.chosen, num_initial, t)
        with tf.GradientTape() as tape:
            out = model(model_inputs(state, batch, target_mask), compute_policy=use_policy, training=True)
            logq = target_log_prob(model, out, batch, target_mask)
            loss = -tf.reduce_mean(logq) * tf.cast(t >= 1, tf.float32) / t_float
            if use_policy:
                step = tf.minimum(t, horizon - 1)  # at t = T there is no next choice: weight 0
                log_pi = model.policy(out, state.taken).log_prob(result.chosen[step])
                policy_term = -tf.reduce_mean(weights[step] * log_pi) * tf.cast(t < horizon, tf.float32)
                loss += alpha * policy_term / t_float
            loss = loss * scale
        grads = tape.gradient(loss, variables)
        return t + 1, [a + (tf.zeros_like(a) if g is None else tf.convert_to_tensor(g))
                       for a, g in zip(acc, grads)]

    zeros = [tf.zeros_like(v) for v in variables]
    _, grads = tf.while_loop(lambda t, _: t <= horizon, body, (tf.constant(0), zeros))
    return grads
