"""Choosing the next query among the untaken candidates: the one rule for training, evaluation and advice."""

import numpy as np
import tensorflow as tf

# A taken candidate's logit (or score): exp(-1e9 - max) is exactly 0 in float32, and unlike -inf
# it keeps 0 * logit (entropy, log-prob sums) finite. Scores of every method lie far above it.
TAKEN_LOGIT = -1e9

MODES = ("random", "sample", "greedy")


def choice_noise(seed, horizon: int, batch_size, num_candidates: int):
    """Gumbel noise for every choice of a rollout: [T, B, N].

    Drawn per episode up front, so that splitting a batch across devices changes no choice, and
    so that sampling is an argmax (XLA-friendly, unlike the multinomial op with 64-bit seeds).
    """
    return -tf.math.log(
        -tf.math.log(tf.random.stateless_uniform([horizon, batch_size, num_candidates], seed, minval=1e-20, maxval=1.0))
    )


def check_mode(mode: str) -> str:
    """`mode` if it is one of MODES, else ValueError (before any graph is built)."""
    if mode not in MODES:
        raise ValueError(f"mode {mode!r}: expected one of {MODES}")
    return mode


def choose(logits, taken, noise, mode: str):
    """Pick one untaken candidate per episode: logits, noise [B, N], taken [B, N] bool -> [B] int32.

    'random' is uniform among the untaken, 'sample' draws from softmax(logits) (Gumbel-max trick),
    'greedy' is the argmax (noise unused, may be None).
    """
    check_mode(mode)
    score = {"random": lambda: noise, "sample": lambda: logits + noise, "greedy": lambda: logits}[mode]()
    score = tf.convert_to_tensor(score)
    return tf.argmax(
        tf.where(tf.cast(taken, tf.bool), tf.constant(TAKEN_LOGIT, score.dtype), score), -1, output_type=tf.int32
    )


def choose_best(scores, taken) -> np.ndarray:
    """The greedy choice of a method's numpy scores: scores [B, N], taken [B, N] bool -> [B] int32."""
    return choose(tf.constant(np.asarray(scores, np.float64)), tf.constant(np.asarray(taken)), None, "greedy").numpy()
