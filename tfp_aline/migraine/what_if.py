"""What-if risk for one person: p(migraine) on a day like a given one with some features changed,
from posterior draws of the trigger weights (jointly, when the network has a joint head)."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pandas as pd
import tensorflow as tf

from tfp_aline.core.joint import joint_keys, joint_posterior
from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.cells import canonical_header
from tfp_aline.migraine.history import feature_aliases
from tfp_aline.migraine.mixtures import MIXTURE_KEYS
from tfp_aline.nn.model import AlineModel

CHANGE = re.compile(r"^\s*(?P<name>.+?)\s*(?P<op>\+=|-=|=)\s*(?P<value>[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?)\s*$")
LEVEL = 0.90  # the central interval reported


@dataclasses.dataclass(frozen=True)
class Change:
    """One feature change: feature index, 'add' (value is a delta, raw units) or 'set' (the value)."""

    feature: int
    how: str
    value: float
    text: str

    def apply(self, raw: np.ndarray) -> np.ndarray:
        out = np.array(raw, dtype=float)
        out[..., self.feature] = out[..., self.feature] + self.value if self.how == "add" else self.value
        return out


def parse_changes(texts, table) -> list[Change]:
    """`--what-if` strings -> Changes. 'FEATURE+=1', 'FEATURE-=0.5' change by a delta in the
    feature's raw units, 'FEATURE=8' sets it; FEATURE is a column name of the history CSV (case,
    spaces, '_' and the unit do not matter, as in the CSV headers)."""
    aliases = feature_aliases(table)
    out = []
    for text in texts:
        m = CHANGE.match(text)
        if m is None:
            raise TfpAlineError(
                f"--what-if {text!r}: expected FEATURE+=DELTA, FEATURE-=DELTA or FEATURE=VALUE with a number, "
                "e.g. 'Sleep duration (h)+=1'"
            )
        key = canonical_header(m["name"])
        if key not in aliases:
            raise TfpAlineError(
                f"--what-if {text!r}: unknown feature {m['name']!r}; expected one of {', '.join(table.names)}"
            )
        value = float(m["value"])
        how = "set" if m["op"] == "=" else "add"
        out.append(Change(aliases[key], how, -value if m["op"] == "-=" else value, text.strip()))
    seen = [c.feature for c in out]
    if len(set(seen)) < len(seen):
        twice = table.names[next(f for f in seen if seen.count(f) > 1)]
        raise TfpAlineError(f"--what-if: {twice!r} is changed twice; give each feature once")
    return out


@dataclasses.dataclass
class WhatIf:
    """p(migraine) on the base day and on the changed day, and their difference, over posterior
    draws of the weights: `table` has rows 'as is', 'what if', 'difference' with columns mean,
    q05, q95; `posterior` names the draws used ('joint', 'marginals', or the exact reference)."""

    base_day: str
    changes: list
    posterior: str
    num_samples: int
    table: pd.DataFrame
    note: str = ""

    def lines(self) -> list[str]:
        """The what-if as text lines, as `advise` prints it."""
        t = self.table
        pct = int(round(100 * LEVEL))
        head = f"what if ({', '.join(c.text for c in self.changes)}), on a day like {self.base_day}"
        rows = [
            f"  {name:>10}: {r.mean:.3f}  [{r.q05:.3f}, {r.q95:.3f}]" for name, r in zip(t["scenario"], t.itertuples())
        ]
        tail = f"  ({pct}% intervals over {self.num_samples} draws of the {self.posterior} posterior of the weights)"
        return [head + ": p(migraine)", *rows, tail] + ([f"  note: {self.note}"] if self.note else [])

    def to_dict(self) -> dict:
        return {
            "base_day": self.base_day,
            "changes": [c.text for c in self.changes],
            "posterior": self.posterior,
            "num_samples": self.num_samples,
            "level": LEVEL,
            "note": self.note,
            "risk": {r.scenario: {"mean": r.mean, "q05": r.q05, "q95": r.q95} for r in self.table.itertuples()},
        }


def weight_draws(outputs: dict, num_samples: int, seed) -> tuple[np.ndarray, str]:
    """[S, L] draws of all parameters of one person from the network outputs (batch 1): the joint
    posterior when the outputs have one, else the marginals drawn independently."""
    seed = tf.constant(seed, tf.int32)
    if joint_keys(outputs):
        q = joint_posterior({k: tf.constant(outputs[k]) for k in joint_keys(outputs)})
        return q.sample(num_samples, seed=seed).numpy()[:, 0].astype(float), "joint"
    q = AlineModel.posterior({k: tf.constant(outputs[k]) for k in MIXTURE_KEYS})
    return q.sample(num_samples, seed=seed).numpy()[:, 0].astype(float), "marginals"


def what_if_risk(task, table, theta, base_raw, changes, base_day: str, posterior: str) -> WhatIf:
    """p(migraine) on `base_raw` [D] and on it with `changes`, for weight draws theta [S, L]."""
    if not changes:
        raise TfpAlineError("--what-if: give at least one change, e.g. 'Sleep duration (h)+=1'")
    changed = base_raw
    for c in changes:
        changed = c.apply(changed)
    z = table.standardize(np.stack([base_raw, changed])).astype(np.float32)  # [2, D]
    logits = task.outcome_logits(tf.constant(theta, tf.float32), tf.constant(z)).numpy()  # [S, 2]
    p = 1.0 / (1.0 + np.exp(-logits.astype(float)))
    lo, hi = (1 - LEVEL) / 2, 1 - (1 - LEVEL) / 2
    rows = []
    for name, v in (("as is", p[:, 0]), ("what if", p[:, 1]), ("difference", p[:, 1] - p[:, 0])):
        rows.append(
            {
                "scenario": name,
                "mean": float(v.mean()),
                "q05": float(np.quantile(v, lo)),
                "q95": float(np.quantile(v, hi)),
            }
        )
    note = ""
    if posterior == "marginals":
        note = (
            "this network has no joint posterior (network.joint: none), so the weights are drawn "
            "independently and the intervals ignore how they trade off"
        )
    return WhatIf(base_day, list(changes), posterior, len(theta), pd.DataFrame(rows), note)
