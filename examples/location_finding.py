"""The ALINE paper's location-finding problem as a `tfp_aline` task that lives outside the package.

One source hides at theta = (source_x, source_y) in the unit square. Measuring at a point x of the
square returns the log of the signal intensity there, with Gaussian noise:

    theta ~ Uniform[0, 1]^2,   x ~ Uniform[0, 1]^2 (the candidate pool),
    mu(theta, x) = b + alpha / (m + ||theta - x||^2),
    y ~ Normal(log mu(theta, x), sigma),

with b = 0.1 (background), alpha = 1 (strength), m = 1e-4 (the paper's "maximum signal"
parameter: the intensity at the source itself is b + alpha / m) and sigma = 0.5.

Nothing here is part of `tfp_aline`: the model is three TFP distributions and a few names, and the
package derives episode sampling and the log posterior from them; the exact reference posterior
is a grid (`examples/location_finding_grid.py`), which the task hands to evaluation in place of the
package's default NUTS by overriding `reference_samples`. A config names the class by import path,

    task:
      class: examples.location_finding:LocationFindingTask
      noise_sd: 0.5          # any field of LocationFindingTask.Options

so the repository root (the folder holding `examples/`) must be importable: `python -m tfp_aline`
run from the root puts it on `sys.path`; the `tfp-aline` script needs `PYTHONPATH=.`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.tasks.base import Task

tfd = tfp.distributions


@dataclasses.dataclass(frozen=True)
class LocationFindingOptions:
    """The task's config section (`task:` keys besides `class`), checked key by key at load.

    noise_sd:   sigma, the standard deviation of the log-intensity measurement noise
    background: b, the intensity far from the source
    strength:   alpha, the source's strength
    max_signal: m, the offset in the denominator (the paper's name); it caps the intensity at the
                source at b + alpha / m and keeps it finite
    """

    noise_sd: float = 0.5
    background: float = 0.1
    strength: float = 1.0
    max_signal: float = 1e-4

    def __post_init__(self):
        # A ValueError here becomes a one-line config error naming the key (tasks/registry.py).
        for key in ("noise_sd", "background", "strength", "max_signal"):
            value = getattr(self, key)
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"task.{key} = {value!r}: expected a positive number")


def log_intensity(theta, x, background, strength, max_signal):
    """log mu(theta, x) = log(b + alpha / (m + ||theta - x||^2)).

    theta: [..., 2], x: [..., n, 2] (leading dims broadcast) -> [..., n].
    """
    sq_dist = tf.reduce_sum(tf.square(theta[..., None, :] - x), axis=-1)
    return tf.math.log(background + strength / (max_signal + sq_dist))


class LocationFindingTask(Task):
    """One source in the unit square, found from noisy log-intensity measurements (continuous y).

    Parameters: `source_x`, `source_y` (group `source`: both); inputs: the measurement point (x, y).
    """

    name = "location_finding"
    x_dim = 2
    y_dim = 1
    outcome = "continuous"
    parameter_names = ("source_x", "source_y")
    parameter_groups = {"source": (0, 1)}
    input_names = ("x", "y")
    Options = LocationFindingOptions

    def __init__(self, options: LocationFindingOptions | None = None):
        self.options = options or LocationFindingOptions()

    @property
    def support(self):
        """The prior's box: theta in [0, 1]^2 (NUTS samples in its unconstrained space)."""
        return np.zeros(2, np.float32), np.ones(2, np.float32)

    def _unit_box(self):
        return tfd.Uniform(tf.zeros([2], self.dtype), tf.ones([2], self.dtype))

    def prior(self) -> tfd.Distribution:
        """p(theta): independent Uniform[0, 1] coordinates, event [2]."""
        return tfd.Independent(self._unit_box(), reinterpreted_batch_ndims=1)

    def design_distribution(self, num_designs: int) -> tfd.Distribution:
        """Measurement points uniform on the unit square: event [n, 2]."""
        return tfd.Sample(self.prior(), num_designs)

    def likelihood(self, theta, x) -> tfd.Distribution:
        """Normal(log mu(theta, x), sigma): theta [..., 2], x [..., n, 2] -> batch [..., n]."""
        o = self.options
        theta, x = tf.cast(theta, self.dtype), tf.cast(x, self.dtype)
        loc = log_intensity(theta, x, o.background, o.strength, o.max_signal)
        return tfd.Normal(loc, tf.constant(o.noise_sd, self.dtype))

    # The posterior is two-dimensional, so evaluation's exact reference is a grid, not NUTS (whose
    # chains stay in separate modes of the sharp posteriors a policy's measurements produce).
    reference_name = "grid"

    def reference_samples(self, context_x, context_y, context_mask, num_samples: int, seed):
        """Draws [S, B, 2] of the exact posterior, tabulated on a self-refining grid."""
        from examples.location_finding_grid import grid_posterior_samples

        return grid_posterior_samples(self, context_x, context_y, context_mask, num_samples, seed)

    def reference_mean(self, context_x, context_y, context_mask, seed):
        """Mean [B, 2] of the tabulated exact posterior (`seed` unused: no sampling)."""
        from examples.location_finding_grid import grid_posterior_mean

        return grid_posterior_mean(self, context_x, context_y, context_mask)
