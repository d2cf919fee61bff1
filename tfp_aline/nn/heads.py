"""Output heads: Gaussian-mixture posterior marginals and per-token logits, computed in float32."""

import keras
import tensorflow as tf

from tfp_aline.nn.embedders import MLP


@keras.saving.register_keras_serializable(package="tfp_aline")
class MixtureHead(keras.layers.Layer):
    """Per-token K-component Gaussian mixture: tokens [B, L, d] -> (logits, locs, scales), each [B, L, K].

    scales = softplus(raw) + min_scale, so a mixture can never collapse to a point mass.
    Defaults to float32 so the densities stay stable under a mixed-precision policy.
    """

    def __init__(self, num_components, hidden_dim=128, min_scale=1e-3, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.num_components = num_components
        self.hidden_dim = hidden_dim
        self.min_scale = min_scale
        self.mlp = MLP(hidden_dim, 3 * num_components, name="mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.mlp.build(input_shape)
        self.built = True

    def call(self, tokens):
        logits, locs, raw_scales = tf.split(self.mlp(tokens), 3, axis=-1)
        return logits, locs, tf.nn.softplus(raw_scales) + self.min_scale

    def get_config(self):
        return {
            **super().get_config(),
            "num_components": self.num_components,
            "hidden_dim": self.hidden_dim,
            "min_scale": self.min_scale,
        }


@keras.saving.register_keras_serializable(package="tfp_aline")
class LogitHead(keras.layers.Layer):
    """One logit per token through a 2-layer MLP: tokens [B, N, d] -> [B, N].

    Used for Bernoulli predictive targets and for the acquisition policy. Defaults to float32.
    """

    def __init__(self, hidden_dim=128, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.mlp = MLP(hidden_dim, 1, name="mlp", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.mlp.build(input_shape)
        self.built = True

    def call(self, tokens):
        return self.mlp(tokens)[..., 0]

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim}
