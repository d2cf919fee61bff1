"""ALINE's losses: posterior NLL over steps and the REINFORCE surrogate with dense rewards."""

import tensorflow as tf

from tfp_aline.core.joint import joint_log_prob


def target_log_prob(model, outputs, batch, target_mask):
    """Mean log q of the true target values over the active target tokens.

    Args:
        model: the `AlineModel` whose heads made `outputs`.
        outputs: the model's output dict at one context.
        batch: the `EpisodeBatch` (`theta` [B, L], `target_y` [B, M, 1]).
        target_mask: [B, L + M] bool; the first L columns are parameter tokens (scored against
            `batch.theta`), the last M predictive tokens (scored against `batch.target_y`).

    Returns:
        [B] float32.
    """
    theta = tf.cast(batch.theta, tf.float32)
    mask = tf.cast(target_mask, tf.float32)
    num_parameters = theta.shape[-1]
    if getattr(model, "joint_reward", False):
        # The joint log q of the active parameters (the reward counts their dependence), spread
        # over them as the marginals' mean is: per active token.
        total = joint_log_prob(outputs, theta, tf.cast(target_mask[:, :num_parameters], tf.bool))
    else:
        total = tf.reduce_sum(model.posterior(outputs).log_prob(theta) * mask[:, :num_parameters], -1)
    if batch.target_y.shape[1]:
        pred = model.predictive(outputs).log_prob(tf.cast(batch.target_y[..., 0], tf.float32))  # [B, M]
        total += tf.reduce_sum(pred * mask[:, num_parameters:], -1)
    return total / tf.maximum(tf.reduce_sum(mask, -1), 1.0)


def inference_log_prob(model, outputs, batch):
    """Mean log q of the true values over ALL parameter tokens (and all predictive tokens).

    The inference loss scores every marginal whatever the episode's target: a target token's
    output never depends on the target mask, so scoring only the target would waste signal.
    With predictive tokens, the parameter part and the predictive part count half each. With a
    joint head (`network.joint`), the parameter part is half the marginals' mean log q and half
    the joint log q of all L parameters over L, so the marginals keep their own training signal.

    Args:
        model: the `AlineModel` whose heads made `outputs`.
        outputs: the model's output dict at one context.
        batch: the `EpisodeBatch` (`theta` [B, L], `target_y` [B, M, 1]).

    Returns:
        [B] float32.
    """
    theta = tf.cast(batch.theta, tf.float32)
    logq = tf.reduce_mean(model.posterior(outputs).log_prob(theta), -1)  # [B]
    if getattr(model, "has_joint", False):
        logq = 0.5 * (logq + joint_log_prob(outputs, theta) / theta.shape[-1])
    if batch.target_y.shape[1]:
        pred = model.predictive(outputs).log_prob(tf.cast(batch.target_y[..., 0], tf.float32))  # [B, M]
        logq = 0.5 * (logq + tf.reduce_mean(pred, -1))
    return logq


def nll_loss(logq):
    """The inference loss: -mean over steps t = 0..T and episodes of log q at D_t.

    Args:
        logq: [T + 1, B]; row 0 is D_0, the posterior before any query, which a new user sees first.

    Returns:
        A scalar.
    """
    return -tf.reduce_mean(logq)


def _batch_moments(x, global_batch=True):
    """Mean and std over the batch of x: [T, B] -> ([T, 1], [T, 1]); over all replicas' episodes
    when `global_batch` (needs a replica context outside any nested tf.function)."""
    ctx = tf.distribute.get_replica_context() if global_batch else None
    n = tf.cast(tf.shape(x)[1], x.dtype)
    s, s2 = tf.reduce_sum(x, 1, keepdims=True), tf.reduce_sum(tf.square(x), 1, keepdims=True)
    if ctx is not None:  # inside strategy.run: normalise over the global batch, not one replica's share
        n, s, s2 = ctx.all_reduce(tf.distribute.ReduceOp.SUM, [n, s, s2])
    mean = s / n
    return mean, tf.sqrt(tf.maximum(s2 / n - tf.square(mean), 0.0))


def step_rewards(logq):
    """Dense rewards R_t = log q(target | D_t) - log q(target | D_{t-1}).

    Args:
        logq: [T + 1, B] mean log q of the targets after t = 0..T queries.

    Returns:
        [T, B].
    """
    return logq[1:] - logq[:-1]


CREDITS = ("step", "return")


def reward_to_go(rewards, gamma):
    """The reward-to-go G_t = sum_{s >= t} gamma^(s - t) R_s.

    With gamma = 1 it is the gain from choice t to the end, log q(target | D_T) - log q(target | D_{t-1}).

    Args:
        rewards: [T, B] step rewards (`step_rewards`).
        gamma: the discount.

    Returns:
        [T, B].
    """
    steps = tf.range(tf.shape(rewards)[0])
    lag = tf.cast(steps[None, :] - steps[:, None], rewards.dtype)  # [t, s] = s - t
    discount = tf.where(lag >= 0, tf.pow(tf.cast(gamma, rewards.dtype), tf.maximum(lag, 0.0)), 0.0)
    return tf.linalg.matmul(discount, rewards)


def policy_weights(rewards, gamma, global_batch=True, credit="step"):
    """The REINFORCE weight of each choice, a constant for the gradient.

    Args:
        rewards: [T, B] step rewards (`step_rewards`).
        gamma: the discount.
        global_batch: normalise over all replicas' episodes (needs a replica context outside any
            nested `tf.function`), else over this replica's.
        credit: 'step': gamma^t * (R_t normalised across the batch per step), each choice paid
            only its own immediate gain (the paper's rule). 'return': the reward-to-go G_t
            (`reward_to_go`) normalised across the batch per step, so a choice is also paid for
            what later choices gain from it; the per-step batch mean is the baseline.

    Returns:
        [T, B], with no gradient.

    Raises:
        ValueError: an unknown `credit`.
    """
    if credit not in CREDITS:
        raise ValueError(f"credit {credit!r}: expected one of {CREDITS}")
    if credit == "return":
        returns = reward_to_go(rewards, gamma)
        mean, std = _batch_moments(returns, global_batch)
        return tf.stop_gradient((returns - mean) / (std + 1e-8))
    mean, std = _batch_moments(rewards, global_batch)
    normalised = (rewards - mean) / (std + 1e-8)
    discount = tf.pow(tf.cast(gamma, rewards.dtype), tf.range(1, tf.shape(rewards)[0] + 1, dtype=rewards.dtype))
    return tf.stop_gradient(discount[:, None] * normalised)


def policy_loss(weights, log_pi):
    """The REINFORCE surrogate -mean_t,b w_t log pi(x_t | D_{t-1}).

    Args:
        weights: [T, B] (`policy_weights`), held constant.
        log_pi: [T, B] log-probabilities of the chosen candidates.

    Returns:
        A scalar.
    """
    return -tf.reduce_mean(tf.stop_gradient(weights) * log_pi)
