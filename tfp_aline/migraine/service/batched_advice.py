"""Advice for several people in one forward pass, with the answer built without pandas.

The service's hot path. `Advisor.advise` (tasks/migraine/advice.py) answers one person and builds
DataFrames; per request that costs several times the network call. Here a request is split in three:
`prepare` (read and check the days, the model inputs: exactly what `Advisor.advise` feeds the
network), `forward` (the requests waiting at that moment, padded to common sizes and stacked, in one
call), and `finish` (the JSON content of `Advice.to_dict()`, from numpy alone). Padding cannot change a
person's numbers: padded context slots are masked out, padded targets are inactive, padded candidates
are marked taken (probability exactly 0), and posteriors do not depend on the candidates or targets.
`tests/migraine/service/test_batched_advice.py` checks the results against `Advisor.advise(...).to_dict()`.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.history import PersonHistory
from tfp_aline.migraine.mixtures import MIXTURE_KEYS, mixture_moments, mixture_quantiles
from tfp_aline.nn.forward import raw_forward

INPUTS = ("context_x", "context_y", "context_mask", "target_x", "target_mask", "query_x", "taken")


@dataclasses.dataclass
class Prepared:
    """One person's checked days and model inputs (arrays without the batch dimension)."""

    history: PersonHistory
    future: PersonHistory | None
    target: object
    inputs: dict
    open_days: np.ndarray
    used: int
    dropped: int
    cap: int
    notes: list


class BatchedAdvisor:
    """`Advisor.advise` split into prepare / forward (many people at once) / finish."""

    def __init__(self, advisor: Advisor):
        self.advisor, self.task, self.table = advisor, advisor.task, advisor.table
        mean, std = tf.constant(self.table.mean, tf.float32), tf.constant(self.table.std, tf.float32)
        d = self.table.num_features
        spec = [
            tf.TensorSpec([None, None, d], tf.float32),  # context_x
            tf.TensorSpec([None, None], tf.float32),  # context_y
            tf.TensorSpec([None, None], tf.bool),  # context_mask
            tf.TensorSpec([None, None, d], tf.float32),  # target_x
            tf.TensorSpec([None, None], tf.bool),  # target_mask [B, L + M]
            tf.TensorSpec([None, None, d], tf.float32),  # query_x
            tf.TensorSpec([None, None], tf.bool),  # taken
        ]
        model = advisor.model
        # One trace for every batch and pool size: a fixed signature also skips tf.function's
        # per-call retracing checks, which cost more than the network at these sizes.
        self._forward = tf.function(lambda *a: raw_forward(model, mean, std, *a), input_signature=spec)
        self._categories = [""] * self.task.num_parameters
        for group, idx in self.task.parameter_groups.items():
            for i in idx:
                self._categories[i] = group

    def prepare(self, history, target="all", future_days=None, max_context: int | None = None) -> Prepared:
        """Read and check one person's days and build the inputs `Advisor.advise` would give the network."""
        a = self.advisor
        h, future, cap, used, dropped, notes = a.read_days(history, target, future_days, max_context)

        open_days, inputs = a.network_inputs(h, future, target, used)
        return Prepared(h, future, target, inputs, open_days, len(used), len(dropped), cap, notes)

    def forward(self, batch: list[Prepared]) -> list[dict]:
        """One network call for all of `batch`; returns each person's outputs, padding removed."""
        num_parameters = self.task.num_parameters
        c = max(len(p.inputs["context_mask"]) for p in batch)
        m = max(len(p.inputs["target_x"]) for p in batch)
        n = max(len(p.inputs["query_x"]) for p in batch)
        d = self.table.num_features
        b = len(batch)
        x = {
            "context_x": np.zeros((b, c, d), np.float32),
            "context_y": np.zeros((b, c), np.float32),
            "context_mask": np.zeros((b, c), bool),
            "target_x": np.zeros((b, m, d), np.float32),
            "target_mask": np.zeros((b, num_parameters + m), bool),
            "query_x": np.zeros((b, n, d), np.float32),
            "taken": np.ones((b, n), bool),  # padded candidates count as taken: probability 0
        }
        for i, p in enumerate(batch):
            q = p.inputs
            k, mi, ni = len(q["context_mask"]), len(q["target_x"]), len(q["query_x"])
            x["context_x"][i, :k], x["context_y"][i, :k], x["context_mask"][i, :k] = (
                q["context_x"],
                q["context_y"],
                q["context_mask"],
            )
            x["target_x"][i, :mi] = q["target_x"]
            x["target_mask"][i, : num_parameters + mi] = q["target_mask"]
            x["query_x"][i, :ni], x["taken"][i, :ni] = q["query_x"], q["taken"]
        out = {k: v.numpy() for k, v in self._forward(*(x[k] for k in INPUTS)).items()}
        # The per-person check's draws too (each person's own seed, so the batch cannot change them):
        # on this thread, so that TensorFlow computes while the event loop reads the next requests.
        check = self.advisor.check_draws(x, out)
        people = []
        for i, p in enumerate(batch):
            mi, ni = len(p.inputs["target_x"]), len(p.inputs["query_x"])
            o = {k: out[k][i] for k in MIXTURE_KEYS}
            o["check"] = check.person(i)
            o.update({k: out[k][i, :mi] for k in ("predictive_logits", "predictive_probs")})
            o.update({k: out[k][i, :ni] for k in ("policy_logits", "policy_probs")})
            people.append(o)
        return people

    def finish(self, p: Prepared, out: dict) -> dict:
        """The content of `Advice.to_dict()` for one person, from the network's outputs."""
        bad = [k for k, v in out.items() if k != "check" and not np.isfinite(v).all()]
        if bad:  # the CLI's refusal: never answer with NaN advice
            raise TfpAlineError(
                f"{p.history.source}: the model returned non-finite values ({', '.join(bad)}) "
                "for these days; check the history for extreme values or wrong units"
            )
        logits, locs, scales = (out[k].astype(float) for k in MIXTURE_KEYS)
        mean, sd = mixture_moments(logits, locs, scales)
        q = mixture_quantiles(logits, locs, scales)
        triggers = [
            {
                "parameter": name,
                "category": self._categories[i],
                "mean": float(mean[i]),
                "sd": float(sd[i]),
                "q05": float(q[i, 0]),
                "q95": float(q[i, 1]),
                "prior_mean": float(self.task.prior_mean[i]),
                "prior_sd": float(self.task.prior_std[i]),
            }
            for i, name in enumerate(self.task.parameter_names)
        ]
        days = [_day(p.history, i, "unreported") for i in p.open_days]
        if p.future is not None:
            days += [_day(p.future, i, "future") for i in range(p.future.num_days)]
        probs = out["predictive_probs"].astype(float)
        risk = [dict(day, p_migraine=float(v)) for day, v in zip(days, probs)]
        n = len(p.open_days)
        policy = out["policy_probs"][:n].astype(float) if n else np.zeros(0)
        order = np.argsort(-policy, kind="stable")
        questions = [
            {
                "rank": rank,
                "day": risk[j]["day"],
                "row": risk[j]["row"],
                "date": risk[j]["date"],
                "probability": float(policy[j]),
                "p_migraine": risk[j]["p_migraine"],
            }
            for rank, j in enumerate(order, start=1)
        ]
        check = self.advisor.person_check({k: np.asarray(v)[None] for k, v in p.inputs.items()}, out["check"])
        notes = list(p.notes)
        if n == 0:
            notes.append("every day is reported: there is nothing left to ask about")
        return {
            "source": p.history.source,
            "target": p.target if isinstance(p.target, str) else list(p.target),
            "capacity": self.advisor.capacity,
            "max_context": p.cap,
            "used_days": p.used,
            "dropped_days": p.dropped,
            "warnings": notes,
            "triggers": triggers,
            "risk": risk,
            "next_questions": questions,
            "posterior_mixture": {
                "mixture_logits": out["mixture_logits"].tolist(),
                "mixture_locs": out["mixture_locs"].tolist(),
                "mixture_scales": out["mixture_scales"].tolist(),
            },
            "check": check.to_dict(),
        }

    def advise(self, history, target="all", future_days=None, max_context: int | None = None) -> dict:
        """One person, start to end (what the service does without a batch)."""
        p = self.prepare(history, target, future_days, max_context)
        return self.finish(p, self.forward([p])[0])


def _day(h: PersonHistory, i: int, kind: str) -> dict:
    date = None if h.dates is None else str(h.dates[i])[:10]
    label = date if date is not None else f"row {h.rows[i]}"
    return {"day": label, "kind": kind, "row": int(h.rows[i]), "date": date}
