"""The psychometric model's response curve and prior ranges (shared by the task and its grid baselines)."""

from __future__ import annotations

import math

import tensorflow as tf

# (name, low, high) of each parameter's uniform prior, in theta order.
PRIOR_BOUNDS = (("threshold", -3.0, 3.0), ("slope", 0.1, 2.0), ("guess", 0.1, 0.9), ("lapse", 0.0, 0.5))
STIMULUS_RANGE = (-5.0, 5.0)


def response_probability(theta, x):
    """p(y = 1 | x, theta) = lapse * guess + (1 - lapse) * (1 - exp(-10^z)), z = (x - threshold) / slope.

    theta: [..., 4], x: [..., n] -> [..., n].
    """
    threshold, slope, guess, lapse = (theta[..., i : i + 1] for i in range(4))
    # Clipping z keeps 10^z finite in float32 (and its gradient defined) without changing F:
    # F is already 0 or 1 to float precision outside |z| < 2.
    z = tf.clip_by_value((x - threshold) / slope, -30.0, 30.0)
    f = -tf.math.expm1(-tf.exp(z * math.log(10.0)))
    return lapse * guess + (1.0 - lapse) * f
