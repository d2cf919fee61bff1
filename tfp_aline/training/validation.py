"""The gap to the exact posterior during training: fixed validation people, random queries, a few steps."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfp_aline.core import seeds
from tfp_aline.core.choice import choice_noise
from tfp_aline.core.rollout import random_choices, state_from_choices
from tfp_aline.core.rollout_state import model_inputs, state_after
from tfp_aline.core.target_names import PREDICTIVE
from tfp_aline.evaluation.metrics import coverage_from_cdf, rmse_mean

CSV_HEADER = "epoch,hours,episodes,target,step,rmse_amortized,rmse_exact,ratio,coverage90\n"


class Validator:
    """Amortized vs exact posterior on the same data, for the curve of quality against wall-clock.

    The people, their candidate pools and the random queries are fixed at construction (from
    `seed`), and so is the exact reference posterior of every validation state (the task's
    `reference_mean`: grid, Laplace or NUTS), so each call costs len(steps) forward passes.
    Rows: per parameter target of the config and step t, the posterior-mean RMSE of both
    posteriors over that target's parameters, their ratio, and the amortized 90% coverage.
    """

    def __init__(self, task, cfg, num_people: int, seed: int):
        e = cfg.episodes
        self.task, self.cfg = task, cfg
        self.steps = sorted({0, e.horizon // 2, e.horizon})
        seed = int(seed) % 2**31  # the run's seed plus an offset: kept within int32
        s = tf.constant([seed, seeds.VALIDATION_EPISODES], tf.int32)
        self.batch = task.sample_episodes(
            num_people,
            e.num_candidates,
            seed=s,
            num_initial_context=e.num_initial_context,
            num_predictive_targets=e.num_predictive_targets,
        )
        noise = choice_noise(
            tf.constant([seed, seeds.VALIDATION_CHOICES], tf.int32), e.horizon, num_people, e.num_candidates
        )
        self.chosen = random_choices(noise, e.horizon)
        final = state_from_choices(self.batch, self.chosen)
        self.states = [state_after(final, self.chosen, e.num_initial_context, tf.constant(t)) for t in self.steps]
        self.theta = self.batch.theta.numpy().astype(np.float64)
        # Per parameter target, its parameters as a mask [P, L], the form the metrics take.
        self.masks = {}
        for name in cfg.target_names:
            if name != PREDICTIVE:
                mask = np.zeros((num_people, task.num_parameters), bool)
                mask[:, list(task.parameter_indices(name))] = True
                self.masks[name] = mask
        self.tmask = tf.ones([num_people, task.num_parameters + e.num_predictive_targets], tf.bool)
        # Once, on fixed data: the reference is the costly part.
        self.exact_means = [
            task.reference_mean(
                st.context_x, st.context_y, st.context_mask, tf.constant([seed, seeds.VALIDATION_REFERENCE + i])
            )
            for i, st in enumerate(self.states)
        ]

    def __call__(self, model) -> list[tuple]:
        """(target, step, rmse_amortized, rmse_exact, ratio, coverage90) for every target and step."""
        rows = []
        for t, state, exact in zip(self.steps, self.states, self.exact_means):
            out = model(model_inputs(state, self.batch, self.tmask), compute_policy=False)
            q = model.posterior(out)
            mean = q.mean().numpy().astype(np.float64)
            u = q.cdf(tf.constant(self.theta, tf.float32)).numpy()
            for name, mask in self.masks.items():
                amortized = float(np.mean(rmse_mean(mean, self.theta, mask)))
                ref = float(np.mean(rmse_mean(exact, self.theta, mask)))
                coverage = float(np.mean(coverage_from_cdf(u, mask, 0.9)))
                rows.append((name, t, amortized, ref, amortized / ref, coverage))
        return rows
