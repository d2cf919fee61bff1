"""The four-parameter psychometric model of the paper's check, as a TFP joint distribution."""

from __future__ import annotations

import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.psychometric.response import PRIOR_BOUNDS, STIMULUS_RANGE, response_probability
from tfp_aline.tasks.base import EvaluationMethod, Task

tfd = tfp.distributions


class PsychometricTask(Task):
    """theta = (threshold, slope, guess, lapse) with uniform priors; stimuli x ~ U[-5, 5]; binary y.

    Groups: 'threshold_slope' and 'guess_lapse' (the paper's two targets), plus each parameter.
    """

    name = "psychometric"
    x_dim = 1
    y_dim = 1
    outcome = "binary"
    parameter_names = tuple(n for n, _, _ in PRIOR_BOUNDS)
    parameter_groups = {"threshold_slope": (0, 1), "guess_lapse": (2, 3)}
    input_names = ("stimulus",)

    def __init__(self, dtype=tf.float32):
        self.dtype = dtype
        self.low = tf.constant([lo for _, lo, _ in PRIOR_BOUNDS], dtype)
        self.high = tf.constant([hi for _, _, hi in PRIOR_BOUNDS], dtype)

    @property
    def support(self):
        return self.low.numpy(), self.high.numpy()

    def prior(self) -> tfd.Distribution:
        """p(theta) as one event of shape [4] (independent uniforms)."""
        return tfd.Independent(tfd.Uniform(self.low, self.high), reinterpreted_batch_ndims=1)

    def design_distribution(self, num_designs: int) -> tfd.Distribution:
        """Stimuli x ~ U[-5, 5]: event [n, 1]."""
        lo, hi = (tf.constant(v, self.dtype) for v in STIMULUS_RANGE)
        return tfd.Sample(tfd.Uniform(lo, hi), [num_designs, 1])

    def likelihood(self, theta, x) -> tfd.Distribution:
        """Bernoulli responses: theta [..., 4], x [..., n, 1] -> batch [..., n]."""
        return tfd.Bernoulli(probs=self.outcome_probs(theta, x), dtype=self.dtype)

    def outcome_probs(self, theta, x):
        """theta [..., 4], x [..., n, 1] -> p(y = 1) [..., n]."""
        return response_probability(theta, x[..., 0])

    # ---- what evaluation asks: the dense grid is the exact reference and drives the baselines
    reference_name = "grid"

    def reference_samples(self, context_x, context_y, context_mask, num_samples, seed):
        from types import SimpleNamespace

        from tfp_aline.psychometric.grid import grid_posterior_samples

        state = SimpleNamespace(context_x=context_x, context_y=context_y, context_mask=context_mask)
        return grid_posterior_samples(self, state, num_samples, seed)  # on the shared default grid

    def evaluation_methods(self):
        def make(kind):
            def factory(run):
                from tfp_aline.psychometric.grid import PsiMarginalAcquisition, QuestPlusAcquisition, default_grid

                cls = QuestPlusAcquisition if kind == "questplus" else PsiMarginalAcquisition
                return cls(default_grid(self))  # one grid per process: its compiled functions trace once

            return factory

        return {"questplus": EvaluationMethod(make("questplus")), "psi-marginal": EvaluationMethod(make("psi"))}
