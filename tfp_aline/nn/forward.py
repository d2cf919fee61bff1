"""The network called on a task's raw-unit inputs (the standardisation is part of the graph), as
the advice, the service and the exported SavedModel call it."""

from __future__ import annotations

import tensorflow as tf

from tfp_aline.core.joint import JOINT_KEYS
from tfp_aline.nn.model import AlineModel


def raw_forward(model, mean, std, context_x, context_y, context_mask, target_x, target_mask, query_x=None, taken=None):
    """The network on raw-unit inputs: x -> (x - mean) / std inside the graph (mean 0, std 1: none).

    context_x [B, C, D] raw units, context_y [B, C] outcomes, context_mask [B, C] bool, target_x [B, M, D],
    target_mask [B, L + M] bool, optional query_x [B, N, D] and taken [B, N] bool. Returns a dict
    of mixture_logits/locs/scales [B, L, K], predictive_logits/probs [B, M] (binary outcomes), the
    joint head's joint_logits/locs/scales/factors when the model has one (`core.joint`) and,
    with query_x, policy_logits/probs [B, N] (taken candidates get logit TAKEN_LOGIT and probability 0).
    """

    # Standardising inside the graph lets callers (and TensorFlow Serving) send raw units.
    def z(x):
        return (x - mean) / std

    inputs = {
        "context_x": z(context_x),
        "context_y": context_y[..., None],
        "context_mask": context_mask,
        "target_x": z(target_x),
        "target_mask": target_mask,
    }
    if query_x is not None:
        inputs["query_x"] = z(query_x)
    out = model(inputs, compute_policy=query_x is not None, training=False)
    result = {
        k: tf.cast(out[k], tf.float32)
        for k in ("mixture_logits", "mixture_locs", "mixture_scales", "predictive_logits")
    }
    result.update({k: tf.cast(out[k], tf.float32) for k in (*JOINT_KEYS, "copula_factors") if k in out})
    result["predictive_probs"] = tf.sigmoid(result["predictive_logits"])
    if query_x is not None:
        logits = tf.cast(AlineModel.masked_policy_logits(out, taken), tf.float32)
        result["policy_logits"] = logits
        result["policy_probs"] = tf.nn.softmax(logits, axis=-1)
    return result
