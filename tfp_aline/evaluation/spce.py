"""sPCE and sNMC: the lower and upper bounds on the total expected information gain of chosen designs.

For a person with true parameters theta_0 and the data D = {(x_t, y_t)} a method collected, and L
contrastive draws theta_1..L from the prior,

    sPCE = log p(D | theta_0) - log( 1/(L+1) sum_{l=0..L} p(D | theta_l) )   (never above log(L+1))
    sNMC = log p(D | theta_0) - log( 1/L     sum_{l=1..L} p(D | theta_l) )

Averaged over people (theta_0 ~ p(theta), D from the method), sPCE is a lower bound and sNMC an
upper bound on the total EIG of the method's policy; both close in on it as L grows (Foster et
al. 2021). The contrastive draws are shared by all people (drawn chunk by chunk from a stateless
seed, so the same L draws for every method) and the log-likelihood sums are reduced chunk by chunk
with a running log-sum-exp, so memory stays at one chunk whatever L is.
"""

from __future__ import annotations

import math
import weakref
from typing import NamedTuple

import numpy as np
import tensorflow as tf

# The contrastive draws come in blocks of this many, block j from fold_in(seed, j): the set of draws
# is then the same whatever the number of people scored at once.
BLOCK = 256
# At most this many likelihood terms ([BLOCK, people, n]) at once: ~64 MB a float32 tensor, a few
# alive at a time, so L = 1e6 on 2000 people with T = 30 stays far below 4 GB.
MAX_ELEMENTS = 1 << 24
BLOCKS_PER_CALL = 64  # blocks drawn, then reduced by one compiled call


class BoundEstimate(NamedTuple):
    """Per-person bounds [B] (nats) and the number of contrastive draws L."""

    spce: np.ndarray
    snmc: np.ndarray
    num_contrastive: int

    @property
    def limit(self) -> float:
        """log(L + 1): the most sPCE can ever report, whatever the designs."""
        return math.log(self.num_contrastive + 1)


def data_log_likelihood(task, theta, x, y, mask=None):
    """`Task.log_likelihood` of each parameter vector on every person's data: theta [C, B, L]
    (or [C, 1, L], shared by all people), x [B, n, Dx], y [B, n, Dy], mask [B, n] bool or None -> [C, B]."""
    theta = tf.cast(theta, task.dtype)
    theta = tf.broadcast_to(theta, tf.concat([tf.shape(theta)[:1], tf.shape(x)[:1], tf.shape(theta)[-1:]], 0))
    return task.log_likelihood(theta, tf.cast(x, task.dtype), y, mask)


def contrastive_bounds(
    task, theta, x, y, mask=None, num_contrastive: int = 100_000, seed=(0, 0), jit_compile=True
) -> BoundEstimate:
    """sPCE and sNMC of each person's data under L = `num_contrastive` prior draws.

    theta: [B, L] the true parameters; x: [B, n, Dx], y: [B, n, Dy] the data each person gave
    (initial context and queries); mask: [B, n] bool or None. seed: a stateless seed; the draws
    depend on it and on L only, so every method and every person is scored against the same set.
    """
    if num_contrastive < 1:
        raise ValueError(f"num_contrastive = {num_contrastive}: expected at least 1")
    x = np.asarray(x, np.float32)
    y = np.asarray(y, np.float32)
    mask = np.ones(x.shape[:2], bool) if mask is None else np.asarray(mask, bool)
    n = max(x.shape[1], 1)
    group = max(1, MAX_ELEMENTS // (BLOCK * n))  # people scored at once
    seed = _seed(seed)
    draw, reduce = _compiled(task, jit_compile)
    contrast = np.full(len(x), -np.inf)
    num_blocks = -(-num_contrastive // BLOCK)
    for first in range(0, num_blocks, BLOCKS_PER_CALL):
        blocks = tf.range(first, min(first + BLOCKS_PER_CALL, num_blocks))
        draws = draw(seed, blocks)  # [K, BLOCK, L]
        # The last block may run past L: its surplus draws are left out.
        valid = blocks[:, None] * BLOCK + tf.range(BLOCK)[None] < num_contrastive  # [K, BLOCK]
        part = np.concatenate(
            [
                reduce(draws, valid, x[i : i + group], y[i : i + group], mask[i : i + group]).numpy()
                for i in range(0, len(x), group)
            ]
        )
        contrast = np.logaddexp(contrast, part.astype(np.float64))
    own = data_log_likelihood(task, tf.convert_to_tensor(theta)[None], x, y, mask)[0].numpy().astype(np.float64)
    spce = own - np.logaddexp(own, contrast) + math.log(num_contrastive + 1)
    snmc = own - contrast + math.log(num_contrastive)
    return BoundEstimate(spce, snmc, num_contrastive)


# task -> {jit_compile: (draw, reduce)}: compiled once per task, not once per method and target
# scored. Weak both ways (the functions reach the task through a weak reference), so a task
# that is dropped takes its compiled functions with it.
_COMPILED = weakref.WeakKeyDictionary()


def _compiled(task, jit_compile: bool):
    try:
        per_task = _COMPILED.setdefault(task, {})
        ref = weakref.ref(task)
    except TypeError:  # a task that cannot be weakly referenced or hashed: compile per call
        per_task, ref = {}, lambda: task
    if jit_compile not in per_task:
        per_task[jit_compile] = (
            tf.function(lambda seed, blocks: _draw_blocks(ref(), seed, blocks)),
            tf.function(lambda *a: _reduce_blocks(ref(), *a), jit_compile=jit_compile, reduce_retracing=True),
        )
    return per_task[jit_compile]


def _seed(seed):
    return tf.constant(np.asarray(seed, np.int64).ravel()[:2].astype(np.int32))


def _draw_blocks(task, seed, blocks):
    """Prior draws of the given blocks, block j from fold_in(seed, j): [K, BLOCK, L].

    Drawn outside the compiled reduction on purpose: inside it, XLA fuses the random-number
    generation into the likelihood and recomputes the draws for every person and design (measured
    40 times slower on location finding)."""
    return tf.map_fn(
        lambda j: task.sample_prior(BLOCK, seed=tf.random.experimental.stateless_fold_in(seed, j)),
        blocks,
        fn_output_signature=task.dtype,
    )


def _reduce_blocks(task, draws, valid, x, y, mask):
    """log sum over the valid draws of p(D | theta): draws [K, BLOCK, L], valid [K, BLOCK] -> [B]."""

    def body(k, running):
        log_lik = data_log_likelihood(task, draws[k][:, None, :], x, y, mask)  # [BLOCK, B]
        log_lik = tf.where(valid[k][:, None], log_lik, tf.constant(-np.inf, log_lik.dtype))
        return k + 1, tf.reduce_logsumexp(tf.stack([running, tf.reduce_logsumexp(log_lik, 0)]), 0)

    start = tf.fill(tf.shape(x)[:1], tf.constant(-np.inf, task.dtype))
    _, total = tf.while_loop(lambda k, _: k < tf.shape(draws)[0], body, (tf.constant(0), start))
    return total
