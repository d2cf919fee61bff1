"""Gradients of the ALINE loss accumulated one rollout step at a time (memory of one step).

The chosen candidates are discrete, so they are constants for the gradient: the state after t
queries is a fixed input, and the loss
    L = 1/(T+1) sum_{t=0..T} -mean_b log q(theta, y* | D_t)  +  alpha/T sum_{t=0..T-1} -mean_b w_t log pi(x_{t+1} | D_t)
(the first term scores every parameter and predictive token, the second is the policy surrogate)
is a sum of per-step terms that each need the network at one state only. Differentiating step by
step therefore gives the same gradient as a tape around the whole rollout while keeping one step's
activations alive. Differentiating only k uniformly drawn steps, each scaled by (T+1)/k, gives an
unbiased estimate of that gradient at about k/(T+1) of the cost (`training.gradient_steps`).
"""

import tensorflow as tf

from tfp_aline.core.objectives import inference_log_prob, target_log_prob
from tfp_aline.core.rollout_state import model_inputs, state_after


def sample_steps(seed, horizon: int, k: int):
    """k distinct steps drawn uniformly from 0..T, in increasing order: [k] int32 (all T + 1 when
    k is 0 or at least T + 1). seed: a stateless seed, shape [2]."""
    if k <= 0 or k >= horizon + 1:
        return tf.range(horizon + 1, dtype=tf.int32)
    scores = tf.random.stateless_uniform([horizon + 1], seed)
    return tf.sort(tf.math.top_k(scores, k).indices)


def stepwise_gradients(
    model, batch, target_mask, final_state, chosen, weights, alpha, variables, steps=None, scale=1.0
):
    """Gradients of scale * (L_NLL + alpha * L_PG) from the steps in `steps`.

    final_state: the `RolloutState` after T queries; chosen: [T, B] int32 choices; weights: [T, B]
    policy-gradient weights, or None in warm-up (then the query path is not computed); steps: [k]
    int32 distinct steps in 0..T, or None for all of them (the exact gradient). With k < T + 1
    steps, each step's term is scaled by (T + 1) / k, so the expectation over uniformly drawn step
    sets is the exact gradient.
    Returns (grads aligned with `variables`, zeros where a variable is not reached;
    inference log q [k, B]; target log q [k, B]) at the differentiated steps.
    """
    horizon = chosen.shape[0] if chosen.shape[0] is not None else tf.shape(chosen)[0]
    if steps is None:
        steps = tf.range(horizon + 1, dtype=tf.int32)
    steps = tf.cast(steps, tf.int32)
    k = tf.shape(steps)[0]
    num_initial = batch.context_x.shape[1]
    use_policy = weights is not None
    t_float = tf.cast(horizon, tf.float32)
    step_scale = scale * (t_float + 1.0) / tf.cast(k, tf.float32)
    size = dict(size=k, element_shape=tf.TensorShape([None]))
    # The pool's tokens are the same at every step: embed them once, collect each step's gradient
    # with respect to them, and take the embedder's share of the gradient once after the loop.
    query_tokens = None
    if use_policy:
        with tf.GradientTape() as embed_tape:
            query_tokens = model.embed_queries(batch.query_x)

    def body(i, acc, token_acc, inf_ta, tgt_ta):
        t = tf.gather(steps, i)
        state = state_after(final_state, chosen, num_initial, t)
        inputs = model_inputs(state, batch, target_mask)
        with tf.GradientTape() as tape:
            if use_policy:
                tape.watch(query_tokens)
                inputs["query_tokens"] = query_tokens
            out = model(inputs, compute_policy=use_policy, training=True)
            inf_logq = inference_log_prob(model, out, batch)
            loss = -tf.reduce_mean(inf_logq) / (t_float + 1.0)
            if use_policy:
                step = tf.minimum(t, horizon - 1)  # at t = T there is no next choice: weight 0
                log_pi = model.policy(out, state.taken).log_prob(tf.gather(chosen, step))
                policy_term = -tf.reduce_mean(tf.gather(weights, step) * log_pi) * tf.cast(t < horizon, tf.float32)
                loss += alpha * policy_term / t_float
            loss = loss * step_scale
        grads = tape.gradient(loss, [*variables, query_tokens] if use_policy else variables)
        if use_policy:
            grads, token_grad = grads[:-1], grads[-1]
            if token_grad is not None:
                token_acc = token_acc + tf.cast(token_grad, token_acc.dtype)
        tgt_logq = tf.stop_gradient(target_log_prob(model, out, batch, target_mask))
        acc = [a + (tf.zeros_like(a) if g is None else tf.convert_to_tensor(g)) for a, g in zip(acc, grads)]
        return i + 1, acc, token_acc, inf_ta.write(i, tf.stop_gradient(inf_logq)), tgt_ta.write(i, tgt_logq)

    zeros = [tf.zeros_like(v) for v in variables]
    token_zeros = tf.zeros_like(query_tokens) if use_policy else tf.zeros([])
    _, grads, token_grad, inf_ta, tgt_ta = tf.while_loop(
        lambda i, *_: i < k,
        body,
        (tf.constant(0), zeros, token_zeros, tf.TensorArray(tf.float32, **size), tf.TensorArray(tf.float32, **size)),
    )
    if use_policy:
        embed_grads = embed_tape.gradient(query_tokens, variables, output_gradients=token_grad)
        grads = [a if g is None else a + tf.convert_to_tensor(g) for a, g in zip(grads, embed_grads)]
    return grads, inf_ta.stack(), tgt_ta.stack()
