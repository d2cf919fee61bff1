"""Token embedders: turn context points, candidates and targets into d-wide tokens."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="tfp_aline")
class MLP(keras.layers.Layer):
    """Linear(hidden_dim)-ReLU-Linear(output_dim) applied to the last axis: [..., D] -> [..., output_dim]."""

    def __init__(self, hidden_dim, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        # Sub-layers follow this layer's dtype, so a float32 head stays float32 under mixed precision.
        self.hidden = keras.layers.Dense(hidden_dim, activation="relu", name="hidden", dtype=self.dtype_policy)
        self.out = keras.layers.Dense(output_dim, name="out", dtype=self.dtype_policy)

    def build(self, input_shape):
        self.hidden.build(input_shape)
        self.out.build(tuple(input_shape[:-1]) + (self.hidden_dim,))
        self.built = True

    def call(self, inputs):
        return self.out(self.hidden(inputs))

    def get_config(self):
        return {**super().get_config(), "hidden_dim": self.hidden_dim, "output_dim": self.output_dim}


@keras.saving.register_keras_serializable(package="tfp_aline")
class TokenEmbedder(keras.layers.Layer):
    """Embeds an episode's inputs as context, target and query tokens of width `embed_dim`.

    context token i: f_x(x_i) + f_y(y_i); query token n: f_x(x_n); parameter target token l:
    a learned embedding f_theta(l); predictive target token m: f_x(x*_m). No positional
    encodings, so the model cannot depend on the order of the context or of the query set.
    """

    def __init__(self, num_parameters, x_dim, y_dim, embed_dim, hidden_dim=128, **kwargs):
        super().__init__(**kwargs)
        self.num_parameters = num_parameters
        self.x_dim = x_dim
        self.y_dim = y_dim
        self.embed_dim = embed_dim
        self.hidden_dim = hidden_dim
        self.x_embedder = MLP(hidden_dim, embed_dim, name="x_embedder")
        self.y_embedder = MLP(hidden_dim, embed_dim, name="y_embedder")
        self.parameter_embedding = keras.layers.Embedding(num_parameters, embed_dim, name="parameter_embedding")

    def build(self, input_shape=None):
        # Every weight shape follows from the config, so loading can rebuild without inputs.
        self.x_embedder.build((None, None, self.x_dim))
        self.y_embedder.build((None, None, self.y_dim))
        self.parameter_embedding.build((None,))
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}

    def call(self, context_x, context_y, context_mask, target_x, query_x=None, query_tokens=None):
        """Tokens of one batch of episodes.

        context_x [B, C, Dx], context_y [B, C, Dy], context_mask [B, C] bool, target_x [B, M, Dx],
        query_x [B, N, Dx] or None, query_tokens [B, N, d] (`embed_queries(query_x)` computed
        earlier; used instead of query_x) -> dict with `context` [B, C, d], `targets` [B, L + M, d]
        (the L parameter tokens first) and, if query_x or query_tokens is given, `queries` [B, N, d].
        Invalid context slots are set to zero so their contents cannot reach any output.
        """
        context = self.x_embedder(context_x) + self.y_embedder(context_y)
        context = tf.where(tf.cast(context_mask, tf.bool)[..., None], context, tf.zeros_like(context))
        parameters = self.parameter_embedding(tf.range(self.num_parameters))
        batch_size = tf.shape(context_x)[0]
        parameters = tf.broadcast_to(parameters[None], [batch_size, self.num_parameters, self.embed_dim])
        parameters = tf.cast(parameters, context.dtype)
        tokens = {"context": context, "targets": tf.concat([parameters, self.x_embedder(target_x)], axis=1)}
        if query_tokens is not None:
            tokens["queries"] = query_tokens
        elif query_x is not None:
            tokens["queries"] = self.embed_queries(query_x)
        return tokens

    def embed_queries(self, query_x):
        """query_x [B, N, Dx] -> query tokens [B, N, d]. They depend on the pool alone, not on the
        context, so a rollout embeds its pool once rather than at every step."""
        return self.x_embedder(query_x)

    def get_config(self):
        return {
            **super().get_config(),
            "num_parameters": self.num_parameters,
            "x_dim": self.x_dim,
            "y_dim": self.y_dim,
            "embed_dim": self.embed_dim,
            "hidden_dim": self.hidden_dim,
        }
