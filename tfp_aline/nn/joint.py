"""The joint posterior heads: parameter tokens -> a mixture of full-covariance Gaussians (density: core/joint.py),
or the correlation factors of a Gaussian copula over the marginal mixtures (density: core/copula.py)."""

import keras
import tensorflow as tf

from tfp_aline.nn.embedders import MLP

JOINTS = ("none", "mixture_tril", "copula")


@keras.saving.register_keras_serializable(package="tfp_aline")
class JointHead(keras.layers.Layer):
    """Parameter tokens [B, L, d] -> a K-component mixture of L-variate Gaussians.

    Returns (logits [B, K], locs [B, K, L], scales [B, K, L], factors [B, K, L, R]). Component k's
    covariance is diag(s) C diag(s) with the correlation matrix C = normalise(F F^T + I) from the
    factors F [L, R]: positive definite by construction, its marginal sds are exactly `scales`,
    and the rows of F for a subset of parameters give that subset's correlations, so every
    marginal of the joint is again of this form. The mixture weights come from the mean of all
    parameter tokens, shared by every parameter (a joint mixture needs one component index).
    """

    def __init__(self, num_components, rank=4, hidden_dim=128, min_scale=1e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_components = num_components
        self.rank = rank
        self.hidden_dim = hidden_dim
        self.min_scale = min_scale
        k = num_components
        self.token_mlp = MLP(hidden_dim, k * (2 + rank), name="token_mlp", dtype=self.dtype_policy)
        self.weight_mlp = MLP(hidden_dim, k, name="weight_mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.token_mlp.build(input_shape)
        self.weight_mlp.build((input_shape[0], input_shape[-1]))
        self.built = True

    def call(self, tokens):
        tokens = tf.cast(tokens, self.compute_dtype)
        b, n = tf.shape(tokens)[0], tf.shape(tokens)[1]
        k, r = self.num_components, self.rank
        per_token = tf.reshape(self.token_mlp(tokens), [b, n, k, 2 + r])
        per_token = tf.transpose(per_token, [0, 2, 1, 3])  # [B, K, L, 2 + R]
        locs = per_token[..., 0]
        scales = tf.nn.softplus(per_token[..., 1]) + self.min_scale
        factors = per_token[..., 2:]
        logits = self.weight_mlp(tf.reduce_mean(tokens, axis=1))
        return logits, locs, scales, factors

    def get_config(self):
        return {
            **super().get_config(),
            "num_components": self.num_components,
            "rank": self.rank,
            "hidden_dim": self.hidden_dim,
            "min_scale": self.min_scale,
        }


@keras.saving.register_keras_serializable(package="tfp_aline")
class CopulaHead(keras.layers.Layer):
    """Parameter tokens [B, L, d] -> correlation factors F [B, L, R] of a Gaussian copula.

    The copula's correlation matrix is normalise(F F^T + I) (`core.copula.correlation_tril`); the
    marginals are the inference head's mixtures, untouched, so adding this head to a trained run
    changes none of its marginals. (Zero factors would start it at the product of the marginals, but
    C is quadratic in F, so at F = 0 its gradient vanishes: the factors start at Keras's default init.)"""

    def __init__(self, rank=4, hidden_dim=128, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.rank, self.hidden_dim = rank, hidden_dim
        self.factor_mlp = MLP(hidden_dim, rank, name="factor_mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.factor_mlp.build(input_shape)
        self.built = True

    def call(self, tokens):
        return self.factor_mlp(tf.cast(tokens, self.compute_dtype))

    def get_config(self):
        return {**super().get_config(), "rank": self.rank, "hidden_dim": self.hidden_dim}
