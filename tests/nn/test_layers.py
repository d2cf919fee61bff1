"""Tests of the Keras layers: shapes, attention rule of the stream transformer, config round trips."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfp_aline.nn import MLP, AlineTransformer, LogitHead, MixtureHead, TokenEmbedder, TransformerLayer

EMBED, HEADS, FF = 8, 2, 16


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def normal(rng, *shape):
    return tf.constant(rng.normal(size=shape), tf.float32)


def masked_full_sequence(layer, context, targets, queries, context_mask, target_mask):
    """Reference: one pre-LN layer over the concatenated [context; targets; queries] sequence
    with the ALINE attention mask built explicitly as [B, S, S]."""
    c, t, n = context.shape[1], targets.shape[1], queries.shape[1]
    b = context.shape[0]
    no_targets, no_queries = tf.zeros([b, t], tf.bool), tf.zeros([b, n], tf.bool)
    context_columns = tf.concat([context_mask, no_targets, no_queries], axis=1)  # what context/targets see
    query_columns = tf.concat([context_mask, target_mask, no_queries], axis=1)  # what queries see
    allowed = tf.concat(
        [tf.repeat(context_columns[:, None], c + t, axis=1), tf.repeat(query_columns[:, None], n, axis=1)], axis=1
    )
    x = tf.concat([context, targets, queries], axis=1)
    normed = layer.attention_norm(x)
    attended = layer.attention(normed, normed, attention_mask=allowed)
    x = x + attended * tf.cast(tf.reduce_any(allowed, axis=-1), tf.float32)[..., None]
    x = x + layer.feed_forward(layer.feed_forward_norm(x))
    return x[:, :c], x[:, c : c + t], x[:, c + t :]


def test_mlp_maps_last_axis(rng):
    mlp = MLP(16, 5)
    assert mlp(normal(rng, 2, 3, 4)).shape == (2, 3, 5)


def test_stream_layer_equals_masked_transformer_over_concatenated_sequence(rng):
    layer = TransformerLayer(EMBED, HEADS, FF)
    b, c, t, n = 4, 5, 3, 6
    context, targets, queries = normal(rng, b, c, EMBED), normal(rng, b, t, EMBED), normal(rng, b, n, EMBED)
    # Episode 0: full context; 1: partly padded; 2: empty context; 3: empty context and no active target.
    context_mask = tf.constant(np.array([[1] * 5, [1, 0, 1, 0, 0], [0] * 5, [0] * 5], bool))
    target_mask = tf.constant(np.array([[1, 0, 1], [0, 1, 0], [1, 1, 1], [0, 0, 0]], bool))
    tokens, new_queries = layer(
        tf.concat([context, targets], axis=1), context_mask, queries, tf.concat([context_mask, target_mask], axis=1)
    )
    ref_context, ref_targets, ref_queries = masked_full_sequence(
        layer, context, targets, queries, context_mask, target_mask
    )
    np.testing.assert_allclose(tokens[:, :c], ref_context, atol=1e-5)
    np.testing.assert_allclose(tokens[:, c:], ref_targets, atol=1e-5)
    np.testing.assert_allclose(new_queries, ref_queries, atol=1e-5)


def test_rows_without_valid_keys_skip_attention(rng):
    layer = TransformerLayer(EMBED, HEADS, FF)
    tokens = normal(rng, 2, 7, EMBED)
    queries = normal(rng, 2, 3, EMBED)
    no_keys = tf.zeros([2, 4], tf.bool)
    out, out_queries = layer(tokens, no_keys, queries, tf.zeros([2, 7], tf.bool))
    # With attention zeroed the layer is the feed-forward residual block alone.
    expected = tokens + layer.feed_forward(layer.feed_forward_norm(tokens))
    expected_queries = queries + layer.feed_forward(layer.feed_forward_norm(queries))
    np.testing.assert_allclose(out, expected, atol=1e-6)
    np.testing.assert_allclose(out_queries, expected_queries, atol=1e-6)


def test_transformer_ignores_padded_context_and_skips_queries(rng):
    transformer = AlineTransformer(EMBED, 2, HEADS, FF)
    context, targets = normal(rng, 2, 5, EMBED), normal(rng, 2, 3, EMBED)
    context_mask = tf.constant(np.array([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0]], bool))
    junk = tf.where(context_mask[..., None], context, 100.0 * normal(rng, 2, 5, EMBED))
    out = transformer(context, targets, context_mask)
    out_junk = transformer(junk, targets, context_mask)
    assert set(out) == {"context", "targets"}
    np.testing.assert_allclose(out["targets"], out_junk["targets"], atol=1e-6)
    valid = context_mask.numpy()
    np.testing.assert_allclose(out["context"].numpy()[valid], out_junk["context"].numpy()[valid], atol=1e-6)


def test_late_queries_join_only_the_last_layers(rng):
    context, targets, queries = normal(rng, 2, 5, EMBED), normal(rng, 2, 3, EMBED), normal(rng, 2, 7, EMBED)
    context_mask = tf.constant(np.array([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0]], bool))
    target_mask = tf.constant(np.array([[1, 0, 1], [1, 1, 1]], bool))
    full = AlineTransformer(EMBED, 3, HEADS, FF)
    late = AlineTransformer(EMBED, 3, HEADS, FF, query_layers=1)
    every = AlineTransformer(EMBED, 3, HEADS, FF, query_layers=3)
    out_full = full(context, targets, context_mask, target_mask, queries)
    for other in (late, every):
        other(context, targets, context_mask, target_mask, queries)
        other.set_weights(full.get_weights())  # the same weights: query_layers adds none
    out_late = late(context, targets, context_mask, target_mask, queries)
    out_every = every(context, targets, context_mask, target_mask, queries)
    for key in out_full:  # query_layers = num_layers is the full transformer
        np.testing.assert_array_equal(out_full[key], out_every[key])
    # The context and target streams never see the queries, so they do not change.
    np.testing.assert_allclose(out_late["targets"], out_full["targets"], atol=1e-6)
    # The late queries: the raw query tokens through the last layer only, keyed by the context and
    # targets that the first two layers made.
    tokens = tf.concat([context, targets], 1)
    for block in full.blocks[:2]:
        tokens, _ = block(tokens, context_mask)
    key_mask = tf.concat([context_mask, target_mask], 1)
    _, want = full.blocks[2](tokens, context_mask, queries, key_mask)
    np.testing.assert_allclose(out_late["queries"], full.final_norm(want), atol=1e-5)
    assert np.abs(out_late["queries"] - out_full["queries"]).max() > 1e-3
    with pytest.raises(ValueError, match="query_layers 4 must be in 0..num_layers"):
        AlineTransformer(EMBED, 3, HEADS, FF, query_layers=4)


def test_token_embedder_shapes_and_padding(rng):
    embedder = TokenEmbedder(num_parameters=4, x_dim=3, y_dim=1, embed_dim=EMBED)
    context_mask = tf.constant([[True, False]])
    tokens = embedder(
        normal(rng, 1, 2, 3), normal(rng, 1, 2, 1), context_mask, normal(rng, 1, 5, 3), normal(rng, 1, 6, 3)
    )
    assert tokens["context"].shape == (1, 2, EMBED)
    assert tokens["targets"].shape == (1, 4 + 5, EMBED)
    assert tokens["queries"].shape == (1, 6, EMBED)
    assert np.all(tokens["context"][0, 1].numpy() == 0.0)
    # Parameter tokens are the same learned embedding in every episode.
    batch2 = embedder(normal(rng, 2, 2, 3), normal(rng, 2, 2, 1), tf.ones([2, 2], tf.bool), tf.zeros([2, 0, 3]))
    assert "queries" not in batch2
    np.testing.assert_array_equal(batch2["targets"][0], batch2["targets"][1])
    np.testing.assert_array_equal(batch2["targets"][0], tokens["targets"][0, :4])


def test_mixture_head_scales_respect_floor(rng):
    head = MixtureHead(num_components=3, min_scale=0.25)
    logits, locs, scales = head(10.0 * normal(rng, 2, 4, EMBED))
    assert logits.shape == locs.shape == scales.shape == (2, 4, 3)
    assert np.all(scales.numpy() >= 0.25)
    assert head.compute_dtype == "float32"


def test_logit_head_one_logit_per_token(rng):
    assert LogitHead()(normal(rng, 3, 7, EMBED)).shape == (3, 7)
    assert LogitHead()(normal(rng, 3, 0, EMBED)).shape == (3, 0)


def _layer_cases(rng):
    x = normal(rng, 2, 3, EMBED)
    mask = tf.constant(np.array([[1, 1, 0], [1, 0, 0]], bool))
    return [
        (lambda: MLP(16, 5, name="mlp"), lambda layer: layer(x)),
        (
            lambda: TokenEmbedder(4, 3, 1, EMBED, hidden_dim=16, name="embedder"),
            lambda layer: layer(x[..., :3], x[..., :1], mask, x[..., 3:6], x[..., 2:5]),
        ),
        (
            lambda: TransformerLayer(EMBED, HEADS, FF, name="block"),
            lambda layer: layer(tf.concat([x, x], axis=1), mask, x, tf.concat([mask, mask], axis=1)),
        ),
        (
            lambda: AlineTransformer(EMBED, 2, HEADS, FF, query_layers=1, name="transformer"),
            lambda layer: layer(x, x, mask, mask, x),
        ),
        (lambda: MixtureHead(3, hidden_dim=16, min_scale=0.01, name="mixture"), lambda layer: layer(x)),
        (lambda: LogitHead(hidden_dim=16, name="logit"), lambda layer: layer(x)),
    ]


@pytest.mark.parametrize("case", range(6))
def test_layer_config_round_trip(case, rng):
    make, run = _layer_cases(rng)[case]
    layer = make()
    out = run(layer)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    run(clone)  # builds the clone
    clone.set_weights(layer.get_weights())
    for a, b in zip(tf.nest.flatten(out), tf.nest.flatten(run(clone))):
        np.testing.assert_array_equal(a, b)
    # The registered name resolves through Keras' own deserialization too.
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(revived) is type(layer) and revived.get_config() == config


@pytest.mark.parametrize("case", range(1, 4))
def test_composite_layers_build_without_inputs(case, rng):
    make, run = _layer_cases(rng)[case]
    layer = make()
    layer.build()
    before = len(layer.weights)
    assert before > 0
    run(layer)
    assert len(layer.weights) == before
