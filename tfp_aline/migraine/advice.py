"""Advice for one person from a trained run: trigger posteriors, migraine risk and the next day to ask about.

The mixture maths is in `mixtures.py`, the text report in `advice_text.py`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings

import numpy as np
import pandas as pd
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.joint import joint_keys, joint_posterior
from tfp_aline.core.targets import PREDICTIVE, target_mask
from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.history import HistoryWarning, PersonHistory, read_history
from tfp_aline.migraine.mixtures import MIXTURE_KEYS, QUANTILES, mixture_moments, mixture_quantiles
from tfp_aline.migraine.what_if import parse_changes, weight_draws, what_if_risk
from tfp_aline.nn.forward import raw_forward
from tfp_aline.nn.model import AlineModel

tfd = tfp.distributions

UNLIKELY = 1e-3  # below this prior-predictive tail probability the history is out of the model's range


def unlikely_outcomes(task, z, y, draws: int = 4000) -> str | None:
    """A warning when the number of migraine days among the reported days z [n, D] (standardised), y [n]
    is one the prior almost never produces: the network was trained on people drawn from that prior,
    so on such a history its answers can be far from the exact posterior."""
    n, k = len(y), int(np.sum(y))
    if n < 5:
        return None
    theta, u = _prior_draws(tuple(task.prior_mean), tuple(task.prior_std), n, draws)
    p = 1.0 / (1.0 + np.exp(-(np.asarray(z) @ theta[:, :-1].T + theta[:, -1])))  # [n, draws]
    counts = (u < p).sum(0)
    tail = min(np.mean(counts >= k), np.mean(counts <= k))
    if tail >= UNLIKELY:
        return None
    return (
        f"{k} of {n} reported days are migraines, which fewer than 1 in {1 / UNLIKELY:.0f} people of the "
        "model's prior have: the model was not trained on such histories and its answers may be wrong; "
        "check the 'migraine' column (1 = migraine, 0 = none)"
    )


@functools.lru_cache(maxsize=16)
def _prior_draws(mean: tuple, std: tuple, n: int, draws: int):
    """Prior draws theta [draws, L] and uniforms [n, draws] for `unlikely_outcomes`, from a fixed seed (the
    same history always gets the same answer); kept, since drawing them was most of a request's cost."""
    rng = np.random.default_rng(0)
    theta = rng.normal(np.asarray(mean), np.asarray(std), size=(draws, len(mean)))
    return theta, rng.random((n, draws))


@dataclasses.dataclass
class Advice:
    """What `Advisor.advise` returns.

    posterior (property): tfd.MixtureSameFamily with batch shape [L], q(theta_l | reported days);
    triggers: one row per parameter (parameter, category, mean, sd, q05, q95, prior_mean, prior_sd);
    risk: p(migraine) per unreported and future day (day, kind, row, date, p_migraine);
    next_questions: unreported days ranked by the policy (rank, day, row, date, probability, p_migraine);
    used_days / dropped_days: reported days given to the model / older ones left out (capacity);
    check: the per-person PSIS check of the posterior against the exact one (`PersonCheck`):
        k-hat, ESS, and which posterior to trust (the corrected one, or the exact reference);
    inputs: the raw-unit arrays fed to the network (for checks against the SavedModel).
    """

    triggers: pd.DataFrame
    risk: pd.DataFrame
    next_questions: pd.DataFrame
    target: object
    used_days: int
    dropped_days: int
    capacity: int
    max_context: int
    source: str
    warnings: list
    check: object = None
    what_if: object = None
    inputs: dict = dataclasses.field(repr=False, default_factory=dict)
    outputs: dict = dataclasses.field(repr=False, default_factory=dict)

    @functools.cached_property
    def posterior(self) -> tfd.MixtureSameFamily:
        """q(theta_l | reported days) for all L parameters: a Gaussian mixture, batch shape [L]."""
        # Built on first use: constructing tfd objects costs about as much as the network call.
        return AlineModel.posterior({k: self.outputs[k][0] for k in MIXTURE_KEYS})

    def to_dict(self) -> dict:
        """Plain JSON-able content (no tfd objects; the mixtures as lists)."""
        content = {
            "source": self.source,
            "target": self.target if isinstance(self.target, str) else list(self.target),
            "capacity": self.capacity,
            "max_context": self.max_context,
            "used_days": self.used_days,
            "dropped_days": self.dropped_days,
            "warnings": list(self.warnings),
            "triggers": _records(self.triggers),
            "risk": _records(self.risk),
            "next_questions": _records(self.next_questions),
            "posterior_mixture": {k: self.outputs[k][0].tolist() for k in MIXTURE_KEYS},
            "check": None if self.check is None else self.check.to_dict(),
        }
        if self.what_if is not None:  # only when asked for, so the service's schema is unchanged
            content["what_if"] = self.what_if.to_dict()
        return content


@dataclasses.dataclass
class PersonCheck:
    """The PSIS check of one person's amortized posterior (`core/psis.py`).

    khat, ess, num_samples: Pareto k-hat and effective sample size of the importance weights of
    num_samples amortized draws; posterior: 'corrected' (k-hat <= 0.7: the weighted draws) or the
    exact reference's name (k-hat above: the amortized posterior is not to be trusted for this
    person); parameters: per parameter (parameter, mean, sd, q05, q95) of that posterior.
    """

    khat: float
    ess: float
    num_samples: int
    posterior: str
    parameters: pd.DataFrame

    @property
    def ok(self) -> bool:
        from tfp_aline.core.psis import KHAT_MAX

        return bool(self.khat <= KHAT_MAX)

    def line(self) -> str:
        """The check in one line, as `advise` prints it."""
        from tfp_aline.core.psis import KHAT_MAX

        head = f"check: PSIS k-hat {self.khat:.2f}, ESS {self.ess:.0f} of {self.num_samples} draws"
        if self.ok:
            return (
                f"{head} (k-hat <= {KHAT_MAX}): the amortized posterior is close to the exact one for this "
                "person; column 'checked' is its importance-weighted correction"
            )
        return (
            f"{head} (k-hat > {KHAT_MAX}): the amortized posterior is not reliable for this person; "
            f"column 'checked' is the exact reference ({self.posterior}) instead"
        )

    def to_dict(self) -> dict:
        return {
            "khat": float(self.khat),
            "ess": float(self.ess),
            "num_samples": int(self.num_samples),
            "ok": self.ok,
            "posterior": self.posterior,
            "message": self.line(),
            "parameters": _records(self.parameters),
        }


def _records(frame: pd.DataFrame) -> list[dict]:
    def plain(v):
        if v is pd.NaT:  # a history without dates: NaT is neither a Timestamp nor JSON
            return None
        if isinstance(v, (pd.Timestamp, np.datetime64)):
            return None if pd.isna(v) else str(v)[:10]
        if isinstance(v, (np.integer,)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return None if math.isnan(v) else float(v)
        if isinstance(v, np.bool_):
            return bool(v)
        return v

    return [{k: plain(v) for k, v in r.items()} for r in frame.to_dict("records")]


class Advisor:
    """A trained run ready to advise: the model, its task and one compiled forward pass."""

    def __init__(self, run):
        task = run.task
        if task.feature_table is None:
            raise TfpAlineError(f"{run.path}: advise needs a run with a feature table (task {task.name!r} has none)")
        self.run, self.task, self.model, self.table = run, task, run.model, task.feature_table
        e = run.cfg.episodes
        # The model saw at most N0 + T observed days per episode during training.
        self.capacity = e.num_initial_context + e.horizon
        self._mean = tf.constant(self.table.mean, tf.float32)
        self._std = tf.constant(self.table.std, tf.float32)
        self._forward = tf.function(self._call, reduce_retracing=True)

    @classmethod
    def from_run_dir(cls, run_dir) -> Advisor:
        from tfp_aline.runs import load_run

        return cls(load_run(run_dir))

    def _call(self, context_x, context_y, context_mask, target_x, target_mask, query_x, taken):
        return raw_forward(
            self.model, self._mean, self._std, context_x, context_y, context_mask, target_x, target_mask, query_x, taken
        )

    def read(self, source, outcome=True) -> PersonHistory:
        """A CSV path or DataFrame -> PersonHistory checked against this run's feature table."""
        return source if isinstance(source, PersonHistory) else read_history(source, self.table, outcome=outcome)

    def read_days(self, history, target="all", future_days=None, max_context: int | None = None):
        """The checks and reading `advise` starts with (arguments as `advise`'s), warnings issued:
        -> (history, future days or None, context cap, used indices, dropped indices, notes)."""
        if not (isinstance(target, str) and target == PREDICTIVE):
            self.task.parameter_indices(target)  # an unknown target fails before any reading
        h = self.read(history)
        future = None if future_days is None else self.read(future_days, outcome=False)
        cap = self.capacity if max_context is None else int(max_context)
        if cap < 0:
            raise TfpAlineError(f"max_context must be >= 0, got {cap}")
        used, dropped = h.context_indices(cap)
        new = []
        if cap > self.capacity:
            new.append(
                f"max_context {cap} exceeds the {self.capacity} observed days the model was "
                "trained with; the network has to extrapolate"
            )
        if len(dropped):
            since = f" ({h.labels()[used[0]]} onwards)" if len(used) else ""
            new.append(
                f"{len(dropped)} older reported day(s) left out: the model takes at most {cap} "
                f"reported days, so the {len(used)} most recent are used{since}"
            )
        unlikely = unlikely_outcomes(self.task, h.z[h.reported], h.y[h.reported])
        if unlikely:
            new.append(unlikely)
        for msg in new:
            warnings.warn(msg, HistoryWarning, stacklevel=3)
        notes = list(h.warnings) + ([] if future is None else list(future.warnings)) + new
        return h, future, cap, used, dropped, notes

    def advise(self, history, target="all", future_days=None, max_context: int | None = None, what_if=None) -> Advice:
        """Posterior of every trigger weight, risk of unreported (and future) days, next questions.

        history: PersonHistory, CSV path or DataFrame; target: 'all', a category ('sleep'), a
        parameter name, a tuple of these, or 'predictive' (the future days if given, else the
        unreported days); future_days: coming days (no outcomes) as path/DataFrame/PersonHistory;
        max_context: reported days given to the model (default: the training capacity), the most
        recent ones; what_if: `--what-if` strings ('Sleep duration (h)+=1'): the risk on a day like
        the first future day (else the last day of the history) with those changes (`what_if.py`).
        """
        changes = None if not what_if else parse_changes(what_if, self.table)
        h, future, cap, used, dropped, notes = self.read_days(history, target, future_days, max_context)

        open_days, person = self.network_inputs(h, future, target, used)
        inputs = {k: v[None] for k, v in person.items()}
        outputs = {k: v.numpy() for k, v in self._forward(**inputs).items()}
        advice = self._advice(h, future, target, outputs, inputs, used, dropped, cap, notes, open_days)
        advice.check = self.check(advice)
        if changes:
            advice.what_if = self.what_if(advice, h, future, changes)
        return advice

    def what_if(self, advice: Advice, h: PersonHistory, future, changes, num_samples: int = 4000, seed=(0, 1)):
        """`WhatIf` of the changes on the first future day (else the history's last day), from the
        joint posterior's draws (the marginals' without a joint head), or from the exact
        reference's when the per-person check rejected the amortized posterior."""
        if future is not None and future.num_days:
            base, label = future.raw[0], f"future day {future.labels()[0]}"
        else:
            base, label = h.raw[-1], f"history day {h.labels()[-1]}"
        theta, name = weight_draws(advice.outputs, num_samples, seed)
        if advice.check is not None and not advice.check.ok:
            i = advice.inputs
            x = ((i["context_x"] - self.table.mean) / self.table.std).astype(np.float32)
            ref = self.task.reference_posterior(
                x, i["context_y"][..., None], i["context_mask"], num_samples, tf.constant(seed)
            )
            theta, name = np.asarray(ref.samples)[:, 0].astype(float), self.task.reference_name
        return what_if_risk(self.task, self.table, theta, base, changes, label, name)

    def network_inputs(self, h: PersonHistory, future, target, used):
        """One person's network inputs, without a batch dimension, from `read_days`'s results:
        -> (indices of the unreported days, {context_x [C, D], context_y [C], context_mask [C],
        target_x [M, D], target_mask [L + M], query_x [N, D], taken [N]}) in raw units."""
        d = self.table.num_features
        # Empty slots are masked out and change nothing, so a huge max_context costs no memory.
        slots = max(len(used), 1)
        context_x = np.zeros((slots, d), np.float32)
        context_y = np.zeros(slots, np.float32)
        context_mask = np.zeros(slots, bool)
        context_x[: len(used)], context_y[: len(used)] = h.raw[used], h.y[used]
        context_mask[: len(used)] = True
        open_days = np.flatnonzero(~h.reported)
        future_raw = np.zeros((0, d)) if future is None else future.raw
        target_x = np.concatenate([h.raw[open_days], future_raw]).astype(np.float32)
        tmask = self._target_mask(target, len(target_x), len(open_days), len(future_raw))[0]
        # With nothing left to ask, one dummy candidate keeps a single compiled graph; it is ignored.
        query_x = (h.raw[open_days] if len(open_days) else np.zeros((1, d))).astype(np.float32)
        inputs = dict(
            context_x=context_x,
            context_y=context_y,
            context_mask=context_mask,
            target_x=target_x,
            target_mask=tmask,
            query_x=query_x,
            taken=np.zeros(len(query_x), bool),
        )
        return open_days, inputs

    def check(self, advice: Advice, num_samples: int = 1000, seed=(0, 0)) -> PersonCheck:
        """PSIS check of the advice's posterior against the task's exact posterior of the same
        reported days: the corrected posterior if k-hat <= 0.7, else the exact reference."""
        return self.check_outputs(advice.inputs, advice.outputs, num_samples, seed)

    def check_outputs(self, inputs: dict, outputs: dict, num_samples: int = 1000, seed=(0, 0)) -> PersonCheck:
        """`check` from the network's inputs and outputs of one person (arrays with a batch
        dimension of 1), for callers that ran the network themselves."""
        return self.person_check(inputs, self.check_draws(inputs, outputs, num_samples, seed), seed)

    def check_draws(self, inputs: dict, outputs: dict, num_samples: int = 1000, seed=(0, 0)):
        """The PSIS check (`core.psis.PsisCheck`) of P people at once, from inputs and outputs with a
        batch dimension P (padded context days masked out). Each person's draws come from `seed`
        alone, so a person gets the same check whoever else is in the batch."""
        from tfp_aline.core.psis import psis_from_log_ratios

        keys = joint_keys(outputs) or MIXTURE_KEYS
        out = {k: tf.convert_to_tensor(outputs[k]) for k in keys}
        draws = self._compiled_draws(int(num_samples), tuple(int(v) for v in seed))
        samples, ratios = draws(
            out,
            tf.convert_to_tensor(inputs["context_x"], tf.float32),
            tf.convert_to_tensor(inputs["context_y"], tf.float32),
            tf.convert_to_tensor(inputs["context_mask"], tf.bool),
        )
        return psis_from_log_ratios(samples.numpy(), ratios.numpy())

    @functools.lru_cache(maxsize=4)  # noqa: B019 - one Advisor per run, held for the process
    def _compiled_draws(self, num_samples: int, seed: tuple):
        """One traced function per (S, seed): draws [S, P, L] and log ratios [P, S], person by person."""
        from tfp_aline.core.psis import draw_log_ratios

        task, num_parameters = self.task, self.task.num_parameters

        def one(args):
            out, x, y, mask = args
            out = {k: v[None] for k, v in out.items()}
            # The joint, where there is one: its dependence between weights makes it the closer proposal.
            q = joint_posterior(out) if joint_keys(out) else AlineModel.posterior(out)
            x = (x - self._mean) / self._std  # the task's units
            s, r = draw_log_ratios(task, q, x[None], y[None, :, None], mask[None], num_samples, tf.constant(seed))
            return s[:, 0], r[0]

        spec = (tf.TensorSpec([num_samples, num_parameters], tf.float32), tf.TensorSpec([num_samples], tf.float64))

        @tf.function(reduce_retracing=True)
        def draws(out, context_x, context_y, context_mask):
            s, r = tf.map_fn(one, (out, context_x, context_y, context_mask), fn_output_signature=spec)
            return tf.transpose(s, [1, 0, 2]), r

        return draws

    def person_check(self, inputs: dict, c, seed=(0, 0)) -> PersonCheck:
        """One person's `PersonCheck` from its `check_draws` (inputs with a batch dimension of 1): the
        corrected posterior if k-hat <= 0.7, else the task's exact reference of the person's days."""
        num_samples = c.samples.shape[0]
        if c.ok[0]:
            mean, sd = c.corrected_mean()[0], c.corrected_sd()[0]
            lo, hi = np.moveaxis(c.corrected_quantiles(QUANTILES)[0], -1, 0)
            name = "corrected"
        else:
            x = ((inputs["context_x"] - self.table.mean) / self.table.std).astype(np.float32)  # the task's units
            y, mask = inputs["context_y"][..., None], inputs["context_mask"]
            ref = self.task.reference_posterior(x, y, mask, num_samples, tf.constant(seed)).samples
            ref = np.asarray(ref)[:, 0]
            mean, sd = ref.mean(0), ref.std(0)
            lo, hi = np.quantile(ref, QUANTILES, axis=0)
            name = self.task.reference_name
        parameters = pd.DataFrame(
            {"parameter": self.task.parameter_names, "mean": mean, "sd": sd, "q05": lo, "q95": hi}
        )
        return PersonCheck(float(c.khat[0]), float(c.ess[0]), num_samples, name, parameters)

    def _target_mask(self, target, m, num_open, num_future):
        if isinstance(target, str) and target == PREDICTIVE:
            if num_open + num_future == 0:
                raise TfpAlineError("target 'predictive' needs unreported days or future days to predict")
            row = np.zeros(self.task.num_parameters + m, bool)
            # The coming days are the goal: the given future days, else the unreported ones.
            start = self.task.num_parameters + (num_open if num_future else 0)
            row[start:] = True
            return row[None]
        return target_mask(self.task, "all" if target is None else target, 1, m).numpy()

    def _advice(self, h, future, target, out, inputs, used, dropped, cap, notes, open_days) -> Advice:
        logits, locs, scales = (out[k][0].astype(float) for k in MIXTURE_KEYS)
        mean, sd = mixture_moments(logits, locs, scales)
        q = mixture_quantiles(logits, locs, scales)
        category = [""] * self.task.num_parameters
        for group, idx in self.task.parameter_groups.items():
            for i in idx:
                category[i] = group
        triggers = pd.DataFrame(
            {
                "parameter": self.task.parameter_names,
                "category": category,
                "mean": mean,
                "sd": sd,
                "q05": q[:, 0],
                "q95": q[:, 1],
                "prior_mean": self.task.prior_mean,
                "prior_sd": self.task.prior_std,
            }
        )

        p = out["predictive_probs"][0].astype(float)
        labels = h.labels()
        days = [_day(labels[i], h.rows[i], None if h.dates is None else h.dates[i]) for i in open_days]
        if future is not None:
            flabels = future.labels()
            days += [
                _day(flabels[i], future.rows[i], None if future.dates is None else future.dates[i], "future")
                for i in range(future.num_days)
            ]
        risk = pd.DataFrame(days, columns=["day", "kind", "row", "date"]).assign(p_migraine=p)

        n = len(open_days)
        policy = out["policy_probs"][0, :n].astype(float) if n else np.zeros(0)
        order = np.argsort(-policy, kind="stable")
        questions = risk.iloc[:n].drop(columns="kind").iloc[order].reset_index(drop=True)
        questions.insert(0, "rank", np.arange(1, n + 1))
        questions.insert(4, "probability", policy[order])
        if n == 0:
            notes.append("every day is reported: there is nothing left to ask about")
        return Advice(
            triggers=triggers,
            risk=risk,
            next_questions=questions,
            target=target,
            used_days=len(used),
            dropped_days=len(dropped),
            capacity=self.capacity,
            max_context=cap,
            source=h.source,
            warnings=notes,
            inputs=inputs,
            outputs=out,
        )


def _day(label, row, date, kind="unreported"):
    return (label, kind, int(row), pd.NaT if date is None else pd.Timestamp(date))
