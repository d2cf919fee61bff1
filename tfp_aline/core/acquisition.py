"""Acquisition methods behind one interface: the learned policy and the baselines score candidates; the
evaluation asks the best untaken one."""

from __future__ import annotations

import time
from typing import NamedTuple

import numpy as np
import tensorflow as tf

from tfp_aline.core.choice import choose_best
from tfp_aline.core.rollout_state import RolloutState, initial_state, model_inputs, observe


class Acquisition:
    """A method that chooses queries. Subclasses implement `scores`; `start` may prepare per batch.

    Every method sees the same things: the episode batch (candidate pool, initial context), the
    target mask and the current `RolloutState`; never the hidden outcomes of unqueried candidates.
    """

    name = "acquisition"
    # True when the choices ignore the target (random, uncertainty sampling, QUEST+): the evaluation
    # then runs the method once per batch and reuses its choices for every target.
    target_agnostic = False

    def start(self, batch, target_mask, seed) -> None:
        """Called once per batch before the first query. seed: shape-[2] int stateless seed."""
        self.batch, self.target_mask, self.seed = batch, tf.cast(target_mask, tf.bool), seed

    def retarget(self, target_mask) -> None:
        """Change the target mid-episode ([B, L + M] bool); later scores are for the new target."""
        self.target_mask = tf.cast(target_mask, tf.bool)

    def scores(self, state: RolloutState) -> np.ndarray:
        """Utility of querying each candidate next: [B, N] (higher is better; taken ones are ignored)."""
        raise NotImplementedError


class PolicyAcquisition(Acquisition):
    """The learned ALINE policy, greedy: the argmax of its logits."""

    name = "policy"

    def __init__(self, model):
        self.model = model
        self._forward = tf.function(
            lambda inputs: model(inputs, compute_policy=True)["policy_logits"], reduce_retracing=True
        )

    def scores(self, state):
        return self._forward(model_inputs(state, self.batch, self.target_mask)).numpy()


class RandomAcquisition(Acquisition):
    """Uniformly random among the untaken candidates (from the stateless seed, so reproducible)."""

    name = "random"
    target_agnostic = True

    def scores(self, state):
        seed = tf.random.experimental.stateless_fold_in(tf.cast(self.seed, tf.int32), state.step)
        return tf.random.stateless_uniform(tf.shape(state.taken), seed).numpy()


class UncertaintyAcquisition(Acquisition):
    """Uncertainty sampling: the candidate whose outcome the amortized model is least sure of
    (largest entropy of its posterior predictive; it ignores the target)."""

    name = "uncertainty"
    target_agnostic = True

    def __init__(self, model):
        self.model = model

        def entropy(inputs):
            out = model(inputs, compute_policy=False)
            return model.predictive(out).entropy()

        self._entropy = tf.function(entropy, reduce_retracing=True)

    def scores(self, state):
        b = self.batch
        inputs = model_inputs(state, b, self.target_mask)
        # The candidates themselves become the predictive targets; parameter tokens stay active.
        num_params = self.model.num_parameters
        inputs["target_x"] = b.query_x
        inputs["target_mask"] = tf.concat(
            [self.target_mask[:, :num_params], tf.ones(tf.shape(b.query_x)[:2], tf.bool)], axis=1
        )
        return self._entropy(inputs).numpy()


class AcquisitionRun(NamedTuple):
    """What one method did on a batch.

    chosen:  [T, B] int32 indices of the queried candidates
    seconds: [T] wall time of each step's decision for the whole batch
    state:   the final RolloutState
    """

    chosen: np.ndarray
    seconds: np.ndarray
    state: RolloutState


def run_acquisition(
    method: Acquisition,
    batch,
    target_mask,
    horizon: int,
    seed,
    progress=None,
    warm_up: bool = True,
    switch: tuple | None = None,
) -> AcquisitionRun:
    """T greedy steps of `method` on a batch; the one loop for every method (policy and baselines).

    target_mask: [B, L + M] bool. switch: (s, mask) to change the target to `mask` after s queries
    (a user whose question changes mid-episode). warm_up: score once before timing, so that
    tracing and compilation are not counted as decision time.
    """
    method.start(batch, target_mask, tf.constant(seed, tf.int32))
    state = initial_state(batch, horizon)
    if warm_up:
        method.scores(state)
    chosen, seconds = [], []
    for t in range(horizon):
        if switch is not None and t == switch[0]:
            method.retarget(switch[1])
        start = time.perf_counter()
        index = choose_best(method.scores(state), state.taken.numpy())
        seconds.append(time.perf_counter() - start)
        chosen.append(index)
        state = observe(state, batch, tf.constant(index))
        if progress is not None:
            progress.update(1)
    return AcquisitionRun(np.stack(chosen), np.array(seconds), state)
