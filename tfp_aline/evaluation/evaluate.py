"""Evaluate a trained run: every method on identical simulated episodes, metrics per step t = 0..T."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from tfp_aline.core.acquisition import (
    PolicyAcquisition,
    RandomAcquisition,
    UncertaintyAcquisition,
    run_acquisition,
)
from tfp_aline.core.objectives import target_log_prob
from tfp_aline.core.rollout_state import model_inputs, state_after
from tfp_aline.core.targets import PREDICTIVE, target_mask
from tfp_aline.errors import TfpAlineError
from tfp_aline.evaluation import metrics as M

# Amortized or trivial methods that every task has; a task adds its own non-amortized baselines
# (`Task.evaluation_methods`), which refit a posterior at every step and may run on fewer
# episodes (`baseline_episodes`).
CHEAP = ("policy", "random", "uncertainty")
COVERAGE_LEVELS = (0.5, 0.9)


@dataclasses.dataclass
class EvalSettings:
    """What to evaluate. `episodes` people per target; non-amortized baselines on the first
    `baseline_episodes` of them; `nuts_people` of the policy's people get a NUTS check at step T."""

    episodes: int = 500
    baseline_episodes: int | None = None
    methods: tuple | None = None
    targets: tuple | None = None
    seed: int = 0
    num_samples: int = 1000
    sbc_samples: int = 99
    exact: bool = True
    nuts_people: int = 0
    horizon: int | None = None
    num_candidates: int | None = None


@dataclasses.dataclass
class EvalResult:
    """Long-format rows (method, target, step, metric, mean, ci_low, ci_high, n), SBC ranks per
    (target, step), chosen inputs per (target, method) [T, B, Dx], and the settings used."""

    rows: list
    sbc: dict
    chosen_x: dict
    settings: EvalSettings
    horizon: int
    task_name: str


def available_methods(task) -> tuple[str, ...]:
    """Every method for this task: the generic ones, then the task's own baselines.
    Uncertainty sampling needs a binary predictive head."""
    generic = CHEAP if task.outcome == "binary" else ("policy", "random")
    return generic + tuple(task.evaluation_methods())


def applicable(method: str, target: str, task) -> bool:
    """A task's baseline may be about parameters only (e.g. EIG) or predictive targets only (EPIG)."""
    spec = task.evaluation_methods().get(method)
    if spec is None or spec.targets == "any":
        return True
    return (target == PREDICTIVE) == (spec.targets == "predictive")


def check_method(name: str, task) -> None:
    """Raise if `name` is not a method for this task."""
    allowed = available_methods(task)
    if name not in allowed:
        raise TfpAlineError(
            f"--methods: unknown method {name!r} for task {task.name!r} (expected: {', '.join(allowed)})"
        )


def make_method(name: str, run):
    """An `Acquisition` by name, for the run's task and model."""
    task, model = run.task, run.model
    check_method(name, task)
    if name == "policy":
        return PolicyAcquisition(model)
    if name == "random":
        return RandomAcquisition()
    if name == "uncertainty":
        return UncertaintyAcquisition(model)
    return task.evaluation_methods()[name].factory(run)


def reference_samples(task, state, num_samples: int, seed):
    """Samples [S, B, L] of the task's exact reference posterior of a state's data (migraine:
    Laplace, checked against NUTS; psychometric: the dense grid; a task of your own: NUTS)."""
    return task.reference_samples(state.context_x, state.context_y, state.context_mask, num_samples, seed)


def _subset(batch, n):
    return type(batch)(*(v[:n] for v in batch))


def _oracle_probs(task, theta, x):
    """p(y = 1 | x, true theta): [B, M]."""
    return task.outcome_probs(tf.cast(theta, tf.float32), tf.cast(x, tf.float32)).numpy()


class _PersonSteps:
    """Progress in person-steps, whatever the batch size: one acquisition step counts `people`."""

    def __init__(self, bar, people: int):
        self.bar, self.people = bar, people

    def update(self, k):
        self.bar.update(k * self.people)


def evaluate_run(run, settings: EvalSettings, progress: bool = True, should_stop=None) -> EvalResult:
    """Run every method on the same episodes for every target and collect the metrics.

    `should_stop()` is asked before each (target, method) run; once it is true the loop ends
    and the result holds the runs finished so far (a signal keeps partial results)."""
    stop = should_stop or (lambda: False)
    from tqdm.auto import tqdm

    cfg, task, model = run.cfg, run.task, run.model
    e = cfg.episodes
    T = settings.horizon or e.horizon
    N = settings.num_candidates or e.num_candidates
    n0, m = e.num_initial_context, e.num_predictive_targets
    methods = settings.methods or available_methods(task)
    for name in methods:
        check_method(name, task)  # before any long work
    targets = settings.targets or cfg.target_names
    if T > N:
        raise TfpAlineError(f"horizon {T} exceeds the {N} candidates")
    B = settings.episodes
    B_base = min(settings.baseline_episodes or B, B)
    seed = tf.constant([settings.seed, 0xE7A1], tf.int32)
    batch = task.sample_episodes(B, N, seed=seed, num_initial_context=n0, num_predictive_targets=m)
    theta = batch.theta.numpy().astype(np.float64)
    L = task.num_parameters
    forward = tf.function(lambda inputs: model(inputs, compute_policy=False), reduce_retracing=True)
    rows, sbc, chosen_x, final_logq = [], {}, {}, {}

    def add(method, target, step, metric, values):
        rows.append((method, target, step, metric, *M.summarize(values)))

    jobs = [(t, meth) for t in targets for meth in methods if applicable(meth, t, task)]
    total = sum(T * (B if meth in CHEAP else B_base) for t, meth in jobs)
    bar = tqdm(total=total, desc="acquisition (person-steps)", unit_scale=True, disable=not progress, mininterval=2.0)
    reusable = {}
    for ti, target in enumerate(targets):
        if stop():
            break
        for method_name in [meth for t, meth in jobs if t == target]:
            if stop():
                break
            n_ep = B if method_name in CHEAP else B_base
            b = _subset(batch, n_ep)
            tmask = target_mask(task, target, n_ep, m)
            acq = make_method(method_name, run)

            if acq.target_agnostic and method_name in reusable:
                result = reusable[method_name]  # same people, same choices: only the metrics differ
                bar.update(T * n_ep)
            else:
                result = run_acquisition(acq, b, tmask, T, [settings.seed, 1], progress=_PersonSteps(bar, n_ep))
                if acq.target_agnostic:
                    reusable[method_name] = result
            chosen_x[(target, method_name)] = (
                tf.gather(b.query_x, tf.transpose(result.chosen), batch_dims=1).numpy().transpose(1, 0, 2)
            )
            per_decision_ms = 1e3 * result.seconds / n_ep
            for t in range(1, T + 1):
                rows.append(
                    (
                        method_name,
                        target,
                        t,
                        "ms_per_decision",
                        float(per_decision_ms[t - 1]),
                        float(per_decision_ms[t - 1]),
                        float(per_decision_ms[t - 1]),
                        n_ep,
                    )
                )
            pmask = tmask.numpy()[:, :L]
            has_params = bool(pmask.any())
            for t in range(T + 1):
                state = state_after(result.state, tf.constant(result.chosen), n0, tf.constant(t))
                out = forward(model_inputs(state, b, tmask))
                logq = target_log_prob(model, out, b, tmask).numpy()
                add(method_name, target, t, "log_q", logq)
                if t == T:
                    final_logq[(target, method_name)] = logq
                if m:
                    probs = tf.sigmoid(out["predictive_logits"]).numpy().astype(np.float64)
                    y = b.target_y.numpy()[..., 0]
                    add(method_name, target, t, "log_loss", M.log_loss(probs, y))
                    add(method_name, target, t, "brier", M.brier(probs, y))
                    rows.append((method_name, target, t, "auc", *M.bootstrap_auc(probs, y, seed=settings.seed)))
                if not has_params:
                    continue
                q = model.posterior(out)
                th = theta[:n_ep]
                s_seed = tf.constant([settings.seed, 1000 * ti + t], tf.int32)
                samples = q.sample(settings.num_samples, seed=s_seed).numpy().astype(np.float64)
                add(method_name, target, t, "rmse_mean", M.rmse_mean(q.mean().numpy(), th, pmask))
                add(method_name, target, t, "rmse_paper", M.rmse_paper(samples, th, pmask, task.support))
                add(method_name, target, t, "rmse_sample", M.rmse_sample(samples, th, pmask))
                cdf = q.cdf(tf.constant(th, tf.float32)).numpy()
                for level in COVERAGE_LEVELS:
                    add(method_name, target, t, f"coverage{int(100 * level)}", M.coverage_from_cdf(cdf, pmask, level))
                if method_name == "policy" and t in (0, T // 2, T):
                    sbc[(target, t)] = M.sbc_ranks(samples[: settings.sbc_samples], th, pmask)
                if settings.exact:
                    ref = reference_samples(task, state, settings.num_samples, s_seed)
                    add(method_name, target, t, "rmse_mean_exact", M.rmse_mean(ref.mean(0), th, pmask))
                    add(method_name, target, t, "rmse_paper_exact", M.rmse_paper(ref, th, pmask, task.support))
                    add(method_name, target, t, "rmse_sample_exact", M.rmse_sample(ref, th, pmask))
                    add(method_name, target, t, "coverage90_exact", M.interval_coverage(ref, th, pmask, 0.9))
            if method_name == "policy" and settings.nuts_people and has_params:
                rows.extend(
                    _nuts_check(task, model, forward, result, b, tmask, target, theta, n0, T, settings, progress)
                )
        if m:  # references that need no queries: the oracle knows theta, the prior-only model nothing
            y = batch.target_y.numpy()[..., 0]
            for name, probs in (
                ("oracle", _oracle_probs(task, batch.theta, batch.target_x)),
                ("prior", task.prior_predictive_probs(batch.target_x.numpy(), seed)),
            ):
                probs = np.asarray(probs, np.float64)
                for t in range(T + 1):
                    add(name, target, t, "log_loss", M.log_loss(probs, y))
                    add(name, target, t, "brier", M.brier(probs, y))
                    rows.append((name, target, t, "auc", *M.bootstrap_auc(probs, y, seed=settings.seed)))
    bar.close()
    for method, target, metric, diff in _paired_gains(final_logq):
        add(method, target, T, metric, diff)
    return EvalResult(rows, sbc, chosen_x, settings, T, task.name)


def _nuts_check(task, model, forward, result, b, tmask, target, theta, n0, T, settings, progress):
    """At step T, NUTS on the first `nuts_people` of the policy's episodes: posterior-mean RMSE of
    NUTS, of the task's reference posterior (e.g. Laplace) and of the amortized posterior, on the
    same people."""
    from tfp_aline.core.exact import nuts_posterior

    k = min(settings.nuts_people, theta.shape[0])
    state = state_after(result.state, tf.constant(result.chosen), n0, tf.constant(T))
    x, y, mask = state.context_x[:k], state.context_y[:k], state.context_mask[:k]
    if progress:
        print(f"NUTS on {k} people (4 chains x 500 draws after 500 warm-up)...", flush=True)
    start = time.perf_counter()
    nuts = nuts_posterior(task, x, y, mask, num_chains=4, num_results=500, num_burnin=500, seed=(settings.seed, 99))
    seconds = time.perf_counter() - start
    pmask = tmask.numpy()[:k, : task.num_parameters]
    th = theta[:k]
    sub = {key: v[:k] for key, v in model_inputs(state, b, tmask).items()}
    amortized = model.posterior(forward(sub)).mean().numpy()
    reference = task.reference_mean(x, y, mask, tf.constant([settings.seed, 98]))
    out = []
    for metric, mean in (
        ("rmse_mean_nuts", nuts.flat.numpy().mean(0)),
        ("rmse_mean_reference_nuts_people", reference),
        ("rmse_mean_amortized_nuts_people", amortized),
    ):
        out.append(("policy", target, T, metric, *M.summarize(M.rmse_mean(mean, th, pmask))))
    out.append(("policy", target, T, "nuts_max_rhat", float(nuts.rhat.numpy().max()), float("nan"), float("nan"), k))
    out.append(("policy", target, T, "nuts_seconds_per_person", seconds / k, float("nan"), float("nan"), k))
    return out


def _paired_gains(final_logq: dict):
    """log q gain over random at step T per method: a paired difference on the episodes both ran
    (every method's episodes are a prefix of the same batch). final_logq: (target, method) -> [B]."""
    out = []
    for (target, method), values in final_logq.items():
        base = final_logq.get((target, "random"))
        if method == "random" or base is None:
            continue
        k = min(len(values), len(base))
        out.append((method, target, "log_q_gain_vs_random", values[:k] - base[:k]))
    return out
