"""Export a trained run of any task as a TensorFlow SavedModel with posterior, policy and (for runs
with predictive targets) predictive serving signatures."""

from __future__ import annotations

import json
from pathlib import Path

import tensorflow as tf

from tfp_aline import atomic
from tfp_aline.errors import TfpAlineError, write_problem
from tfp_aline.nn.forward import raw_forward
from tfp_aline.paths import check_replaceable

SIGNATURES = ("posterior", "predictive", "policy")
SIGNATURE_FILE = "signature.json"

_INPUTS = {
    "context_x": ("float32", "[B, C, D]", "observed designs in RAW units (input order below)"),
    "context_y": ("float32", "[B, C]", "their outcomes (binary tasks: 1 or 0)"),
    "context_mask": ("bool", "[B, C]", "true for filled context slots (padding is false)"),
    "target_x": ("float32", "[B, M, D]", "designs to predict, raw units (M = 0 without predictive targets)"),
    "target_mask": ("bool", "[B, L + M]", "active targets: L parameters, then the M predictive targets"),
    "query_x": ("float32", "[B, N, D]", "candidate designs to choose from, raw units (policy)"),
    "taken": ("bool", "[B, N]", "candidates already chosen (probability 0) (policy)"),
}
_OUTPUTS = {
    "posterior": ("mixture_logits", "mixture_locs", "mixture_scales"),
    "predictive": ("predictive_logits", "predictive_probs"),
    "policy": ("policy_logits", "policy_probs"),
}


class _Serving(tf.Module):
    """The model plus the baked-in feature standardisation, with three fixed input signatures."""

    def __init__(self, model, mean, std):
        super().__init__(name="tfp_aline_serving")
        # Save the model's underlying tf.Variables, not the Keras model: with the Keras objects
        # tracked, TF2 loading works but the TF1-style loader used by TensorFlow Serving finds
        # no variables; tracking both would store every weight twice.
        self.model = self._no_dependency(model)
        self.tf_variables = [v.value for v in model.variables]
        d = len(mean)
        self._mean, self._std = tf.constant(mean, tf.float32), tf.constant(std, tf.float32)
        f, b = tf.float32, tf.bool
        ctx = [
            tf.TensorSpec([None, None, d], f, "context_x"),
            tf.TensorSpec([None, None], f, "context_y"),
            tf.TensorSpec([None, None], b, "context_mask"),
        ]
        tgt = tf.TensorSpec([None, None, d], f, "target_x")
        tmask = tf.TensorSpec([None, None], b, "target_mask")
        qry = [tf.TensorSpec([None, None, d], f, "query_x"), tf.TensorSpec([None, None], b, "taken")]
        self.posterior = tf.function(self._posterior, input_signature=ctx + [tmask])
        self.predictive = tf.function(self._predictive, input_signature=ctx + [tgt, tmask])
        self.policy = tf.function(self._policy, input_signature=ctx + [tgt, tmask] + qry)
        self._d = d

    def _run(self, context_x, context_y, context_mask, target_x, target_mask, query_x=None, taken=None):
        return raw_forward(
            self.model, self._mean, self._std, context_x, context_y, context_mask, target_x, target_mask, query_x, taken
        )

    def _posterior(self, context_x, context_y, context_mask, target_mask):
        # Parameter tokens attend only to the context, so target_mask (accepted for one uniform
        # interface, shape [B, L]) cannot change these outputs.
        empty = tf.zeros([tf.shape(context_x)[0], 0, self._d], tf.float32)
        out = self._run(context_x, context_y, context_mask, empty, target_mask)
        return {k: out[k] for k in _OUTPUTS["posterior"]}

    def _predictive(self, context_x, context_y, context_mask, target_x, target_mask):
        out = self._run(context_x, context_y, context_mask, target_x, target_mask)
        return {k: out[k] for k in _OUTPUTS["predictive"]}

    def _policy(self, context_x, context_y, context_mask, target_x, target_mask, query_x, taken):
        return self._run(context_x, context_y, context_mask, target_x, target_mask, query_x, taken)


def signatures_of(run) -> tuple[str, ...]:
    """The signatures RUN's export carries: `predictive` only when it was trained with predictive targets."""
    return SIGNATURES if run.cfg.episodes.num_predictive_targets > 0 else ("posterior", "policy")


def _inputs(task):
    """[(name, unit, typical range or None, mean, std)] of the task's D inputs: the feature table's
    raw units and standardisation when the task has one, else the designs as they are."""
    t = task.feature_table
    if t is not None:
        return [
            (n, u, [float(lo), float(hi)], float(m), float(s))
            for n, u, lo, hi, m, s in zip(t.names, t.units, t.range_low, t.range_high, t.mean, t.std)
        ]
    return [(n, "", None, 0.0, 1.0) for n in task.input_names()]


def signature_info(run) -> dict:
    """The JSON description written beside the SavedModel: inputs, outputs, features, parameters."""
    task = run.task
    names = signatures_of(run)
    e = run.cfg.episodes
    return {
        "format": "TensorFlow SavedModel; load with tf.saved_model.load(DIR).signatures[NAME](**inputs)",
        "run": str(run.path),
        "config": run.cfg.name,
        "signatures": {
            name: {
                "inputs": {k: dict(zip(("dtype", "shape", "meaning"), _INPUTS[k])) for k in _signature_inputs(name)},
                "outputs": list(_OUTPUTS[name])
                + ([o for n in ("posterior", "predictive") for o in _OUTPUTS[n]] if name == "policy" else []),
            }
            for name in names
        },
        "task": task.name,
        "outcome": task.outcome,
        "features": [
            {"index": i, "name": n, "unit": u, "typical_range": r, "mean": m, "std": s}
            for i, (n, u, r, m, s) in enumerate(_inputs(task))
        ],
        "parameters": list(task.parameter_names),
        "parameter_groups": {g: list(ix) for g, ix in task.parameter_groups.items()},
        # The model saw at most N0 + T observations per episode during training.
        "context_capacity": e.num_initial_context + e.horizon,
        "notes": [
            "inputs are raw units; the graph standardises them with the mean/std listed here",
            "no missing input values: every design needs all D inputs",
            "posterior: Gaussian mixture per parameter, weights softmax(mixture_logits)",
            "policy returns every output of one forward pass (posterior, predictive, policy)",
        ],
    }


def _signature_inputs(name):
    base = ["context_x", "context_y", "context_mask"]
    return {
        "posterior": base + ["target_mask"],
        "predictive": base + ["target_x", "target_mask"],
        "policy": base + ["target_x", "target_mask", "query_x", "taken"],
    }[name]


def export_saved_model(run, out_dir, overwrite: bool = False) -> Path:
    """Write RUN's model as a SavedModel to out_dir (atomically: a temp dir beside it, then rename).

    Signatures `posterior`, `predictive`, `policy` take raw-unit features (standardisation is in
    the graph) and need only TensorFlow to load. Refuses a non-empty out_dir unless overwrite.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise TfpAlineError(f"{out}: exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise TfpAlineError(f"{out}: folder is not empty; choose another --out or pass --force to replace it")
    check_replaceable(out, "--out", keep=[run.path])
    task = run.task
    if task.y_dim != 1:
        raise TfpAlineError(
            f"{run.path}: export takes tasks with one outcome per design; {task.name!r} has {task.y_dim}"
        )
    inputs = _inputs(task)
    module = _Serving(run.model, [i[3] for i in inputs], [i[4] for i in inputs])
    try:
        with atomic.atomic_dir(out) as tmp:
            tf.saved_model.save(module, str(tmp), signatures={n: getattr(module, n) for n in signatures_of(run)})
            (tmp / SIGNATURE_FILE).write_text(json.dumps(signature_info(run), indent=2, ensure_ascii=False))
            (tmp / "README.md").write_text(_readme(run, inputs))
    except (OSError, tf.errors.OpError) as e:  # a full disk or an unwritable folder
        kept = f"{out} is unchanged" if out.exists() else "nothing was written"
        raise TfpAlineError(f"--out {out}: cannot write the SavedModel ({write_problem(e)}); {kept}") from None
    return out


def _readme(run, inputs) -> str:
    task = run.task
    names = "\n".join(f"{i:2d}. {n}" + (f" ({u})" if u else "") for i, (n, u, *_) in enumerate(inputs))
    e = run.cfg.episodes
    return f"""# ALINE SavedModel (tfp_aline export of task {task.name!r})

Load with TensorFlow only: `m = tf.saved_model.load(DIR); m.signatures["policy"](**inputs)`.
Signatures: {", ".join(signatures_of(run))} (inputs, shapes and outputs in {SIGNATURE_FILE}).
Inputs are RAW units in this order (the graph standardises them); no missing values:

{names}

Parameters (L = {task.num_parameters}): {", ".join(task.parameter_names)}.
The model was trained with at most {e.num_initial_context + e.horizon} observations of context.
"""
