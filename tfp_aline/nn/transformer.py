"""The ALINE transformer: masked attention over context, target and query tokens run as three streams."""

import keras
import tensorflow as tf

from tfp_aline.nn.embedders import MLP


def _has_valid_key(key_mask, dtype):
    """[B, S] bool -> [B, 1, 1]: 1 where at least one key is valid, else 0."""
    return tf.cast(tf.reduce_any(key_mask, axis=1), dtype)[:, None, None]


@keras.saving.register_keras_serializable(package="tfp_aline")
class TransformerLayer(keras.layers.Layer):
    """One pre-layer-norm transformer layer whose weights are shared by all token streams.

    Residual blocks are x + Attention(LN(x), LN(keys)) then x + FF(LN(x)). The streams are
    (1) context -> valid context, (2) targets -> valid context, (3) queries -> valid context
    and active targets. (1) and (2) share keys and mask, so they run as one attention call over
    the rows [context; targets]. Together this equals a transformer over the concatenated
    sequence with the ALINE attention mask, but never builds that sequence's [S, S] scores.
    A row with no valid key gets a zero attention output, so padding never leaks into it.
    """

    def __init__(self, embed_dim, num_heads, ff_dim, **kwargs):
        super().__init__(**kwargs)
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim {embed_dim} must be divisible by num_heads {num_heads}")
        self.embed_dim = embed_dim
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.attention_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="attention_norm")
        self.attention = keras.layers.MultiHeadAttention(num_heads, embed_dim // num_heads, name="attention")
        self.feed_forward_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="feed_forward_norm")
        self.feed_forward = MLP(ff_dim, embed_dim, name="feed_forward")

    def build(self, input_shape=None):
        shape = (None, None, self.embed_dim)
        self.attention_norm.build(shape)
        self.attention.build(shape, shape)
        self.feed_forward_norm.build(shape)
        self.feed_forward.build(shape)
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}

    def call(self, tokens, context_mask, queries=None, query_key_mask=None):
        """tokens [B, C + T, d] (context then targets), context_mask [B, C] bool,
        queries [B, N, d] or None, query_key_mask [B, C + T] bool (valid context, active targets)
        -> (tokens [B, C + T, d], queries [B, N, d] or None)."""
        normed = self.attention_norm(tokens)
        normed_context = normed[:, : tf.shape(context_mask)[1]]
        attended = self.attention(normed, normed_context, value_mask=context_mask)
        tokens = tokens + attended * _has_valid_key(context_mask, attended.dtype)
        tokens = tokens + self.feed_forward(self.feed_forward_norm(tokens))
        if queries is None:
            return tokens, None
        # Keys are this layer's *input* context and targets, as in the concatenated transformer.
        attended = self.attention(self.attention_norm(queries), normed, value_mask=query_key_mask)
        queries = queries + attended * _has_valid_key(query_key_mask, attended.dtype)
        queries = queries + self.feed_forward(self.feed_forward_norm(queries))
        return tokens, queries

    def get_config(self):
        return {**super().get_config(), "embed_dim": self.embed_dim, "num_heads": self.num_heads, "ff_dim": self.ff_dim}


@keras.saving.register_keras_serializable(package="tfp_aline")
class AlineTransformer(keras.layers.Layer):
    """A stack of `TransformerLayer`s plus a final layer norm (pre-layer-norm transformer).

    `query_layers` (0: all) lets the query tokens join only the last that many layers: the
    context and target streams are unchanged, and the query stream, which is most of a forward
    pass's cost when the pool is large, costs that fraction of its full depth."""

    def __init__(self, embed_dim, num_layers, num_heads, ff_dim, query_layers=0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= query_layers <= num_layers:
            raise ValueError(f"query_layers {query_layers} must be in 0..num_layers ({num_layers})")
        self.embed_dim = embed_dim
        self.num_layers = num_layers
        self.num_heads = num_heads
        self.ff_dim = ff_dim
        self.query_layers = query_layers
        # One attribute per layer rather than a list: tf.train.Checkpoint does not track
        # layers held in a Python list of a Keras 3 layer.
        for i in range(num_layers):
            setattr(self, f"layer_{i}", TransformerLayer(embed_dim, num_heads, ff_dim, name=f"layer_{i}"))
        self.final_norm = keras.layers.LayerNormalization(epsilon=1e-5, name="final_norm")

    @property
    def blocks(self):
        """The transformer layers, first to last."""
        return [getattr(self, f"layer_{i}") for i in range(self.num_layers)]

    def build(self, input_shape=None):
        for block in self.blocks:
            block.build()
        self.final_norm.build((None, None, self.embed_dim))
        self.built = True

    def get_build_config(self):
        return {"input_shape": None}

    def call(self, context, targets, context_mask, target_mask=None, queries=None):
        """context [B, C, d], targets [B, T, d], context_mask [B, C] bool, target_mask [B, T] bool
        (needed only with queries), queries [B, N, d] or None -> dict with `context`, `targets`
        and, if queries were given, `queries`, shaped like the inputs."""
        context_mask = tf.cast(context_mask, tf.bool)
        num_context = tf.shape(context)[1]
        tokens = tf.concat([context, targets], axis=1)
        query_key_mask = None
        if queries is not None:
            if target_mask is None:
                raise ValueError("target_mask is required when queries are given")
            query_key_mask = tf.concat([context_mask, tf.cast(target_mask, tf.bool)], axis=1)
        first_query_layer = self.num_layers - (self.query_layers or self.num_layers)
        for i, block in enumerate(self.blocks):
            if i < first_query_layer:
                tokens, _ = block(tokens, context_mask)
            else:
                tokens, queries = block(tokens, context_mask, queries, query_key_mask)
        tokens = self.final_norm(tokens)
        out = {"context": tokens[:, :num_context], "targets": tokens[:, num_context:]}
        if queries is not None:
            out["queries"] = self.final_norm(queries)
        return out

    def get_config(self):
        return {
            **super().get_config(),
            "embed_dim": self.embed_dim,
            "num_layers": self.num_layers,
            "num_heads": self.num_heads,
            "ff_dim": self.ff_dim,
            "query_layers": self.query_layers,
        }
