"""The typed episode batch that tasks produce and the network and training loop consume."""

from typing import NamedTuple

import tensorflow as tf


class EpisodeBatch(NamedTuple):
    """A batch of B simulated episodes (a NamedTuple, so `tf.nest` and `tf.function` accept it).

    theta:     [B, L]      true parameters
    query_x:   [B, N, Dx]  candidate pool (the query set)
    query_y:   [B, N, Dy]  outcomes of every candidate, revealed only when it is queried
    context_x: [B, N0, Dx] initial context (N0 may be 0)
    context_y: [B, N0, Dy]
    target_x:  [B, M, Dx]  predictive-target inputs (M may be 0)
    target_y:  [B, M, Dy]  their outcomes
    """

    theta: tf.Tensor
    query_x: tf.Tensor
    query_y: tf.Tensor
    context_x: tf.Tensor
    context_y: tf.Tensor
    target_x: tf.Tensor
    target_y: tf.Tensor

    @property
    def batch_size(self):
        return tf.shape(self.theta)[0]
