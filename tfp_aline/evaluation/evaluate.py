"""Evaluate a trained run: every method on identical simulated episodes, metrics per step t = 0..T."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from tfp_aline.core import seeds
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
# SBC and the coverage curve over all credibility levels, on the policy's own (adaptive) data and
# on random queries, at steps 0, T/2 and T.
CALIBRATION_METHODS = ("policy", "random")
CURVE_LEVELS = tuple(np.round(np.linspace(0.0, 1.0, 41), 3))


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
    # Random designs every method starts from (the paper's BED protocol: one); None: the config's.
    num_initial_context: int | None = None
    # Contrastive prior draws L of the sPCE/sNMC bounds on total EIG at step T (0: not computed).
    spce_samples: int = 100_000


@dataclasses.dataclass
class EvalResult:
    """Long-format rows (method, target, step, metric, mean, ci_low, ci_high, n), SBC ranks and the
    posterior CDF at the truth (for coverage curves) per (target, method, step), chosen inputs per
    (target, method) [T, B, Dx], and the settings used."""

    rows: list
    sbc: dict
    chosen_x: dict
    settings: EvalSettings
    horizon: int
    task_name: str
    reference_name: str = "NUTS"  # the task's exact reference posterior (NUTS, Laplace, grid, ...)
    num_candidates: int | None = None  # the candidate pool N of every person
    num_initial: int = 0  # random designs every method started from
    pit: dict = dataclasses.field(default_factory=dict)  # (target, method, step) -> CDF at the truth [K]


def available_methods(task, predictive_head: bool = True) -> tuple[str, ...]:
    """Every method for this task: the generic ones, then the task's own baselines. Uncertainty
    sampling needs a binary predictive head that was trained (`predictive_head`: the run had
    predictive targets)."""
    generic = CHEAP if task.outcome == "binary" and predictive_head else ("policy", "random")
    return generic + tuple(task.evaluation_methods())


def has_predictive_head(run) -> bool:
    """The run trained its predictive head (episodes.num_predictive_targets > 0)."""
    return run.cfg.episodes.num_predictive_targets > 0


def applicable(method: str, target: str, task) -> bool:
    """A task's baseline may be about parameters only (e.g. EIG) or predictive targets only (EPIG)."""
    spec = task.evaluation_methods().get(method)
    if spec is None or spec.targets == "any":
        return True
    return (target == PREDICTIVE) == (spec.targets == "predictive")


def check_method(name: str, task, predictive_head: bool = True) -> None:
    """Raise if `name` is not a method for this task (and run: see `available_methods`)."""
    allowed = available_methods(task, predictive_head)
    if name == "uncertainty" and name in available_methods(task) and not predictive_head:
        raise TfpAlineError(
            "--methods: 'uncertainty' needs a trained predictive head, and this run was trained with "
            "episodes.num_predictive_targets = 0"
        )
    if name not in allowed:
        raise TfpAlineError(
            f"--methods: unknown method {name!r} for task {task.name!r} (expected: {', '.join(allowed)})"
        )


def make_method(name: str, run):
    """An `Acquisition` by name, for the run's task and model."""
    task, model = run.task, run.model
    check_method(name, task, has_predictive_head(run))
    if name == "policy":
        return PolicyAcquisition(model)
    if name == "random":
        return RandomAcquisition()
    if name == "uncertainty":
        return UncertaintyAcquisition(model)
    return task.evaluation_methods()[name].factory(run)


def reference_samples(task, state, num_samples: int, seed):
    """Samples [S, B, L] of the task's exact reference posterior of a state's data
    (`task.reference_name` says which: NUTS by default)."""
    return task.reference_samples(state.context_x, state.context_y, state.context_mask, num_samples, seed)


def reference_posterior(task, state, num_samples: int, seed):
    """The task's `ReferencePosterior` of a state's data: samples [S, B, L], and, when it is NUTS,
    the run itself and the people whose chains did not converge (already warned about)."""
    return task.reference_posterior(state.context_x, state.context_y, state.context_mask, num_samples, seed)


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


@dataclasses.dataclass
class _Episodes:
    """The simulated people every (target, method) run shares, and what each run needs of them."""

    run: object
    settings: EvalSettings
    batch: object  # EpisodeBatch of B people with N candidates each
    theta: np.ndarray  # true parameters [B, L], float64
    seed: tf.Tensor  # the episodes' stateless seed [2]
    forward: object  # the model without its policy head, as one tf.function
    horizon: int
    num_initial: int
    num_predictive: int
    progress: bool

    @property
    def task(self):
        return self.run.task

    @property
    def model(self):
        return self.run.model

    def people(self, method: str) -> int:
        """How many of the shared people a method runs on."""
        s = self.settings
        return s.episodes if method in CHEAP else min(s.baseline_episodes or s.episodes, s.episodes)


class _Collected:
    """What an evaluation accumulates: rows, SBC ranks, chosen inputs and step-T log q per run."""

    def __init__(self):
        self.rows, self.sbc, self.chosen_x, self.final_logq = [], {}, {}, {}
        self.pit = {}

    def add(self, method, target, step, metric, values):
        """One row summarising per-person `values` (mean and 95% interval)."""
        self.rows.append((method, target, step, metric, *M.summarize(values)))


def evaluate_run(run, settings: EvalSettings, progress: bool = True, should_stop=None) -> EvalResult:
    """Run every method on the same episodes for every target and collect the metrics.

    `should_stop()` is asked before each (target, method) run; once it is true the loop ends
    and the result holds the runs finished so far (a signal keeps partial results)."""
    stop = should_stop or (lambda: False)
    from tqdm.auto import tqdm

    methods, targets, T, N = _plan(run, settings)
    ep = _shared_episodes(run, settings, T, N, progress)
    jobs = [(t, meth) for t in targets for meth in methods if applicable(meth, t, run.task)]
    total = sum(T * ep.people(meth) for t, meth in jobs)
    bar = tqdm(total=total, desc="acquisition (person-steps)", unit_scale=True, disable=not progress, mininterval=2.0)
    got, reusable = _Collected(), {}
    for ti, target in enumerate(targets):
        if stop():
            break
        for method_name in [meth for t, meth in jobs if t == target]:
            if stop():
                break
            _evaluate_method(ep, got, bar, reusable, ti, target, method_name)
        if ep.num_predictive:
            _reference_predictions(ep, got, target)
    bar.close()
    for method, target, metric, diff in _paired_gains(got.final_logq):
        got.add(method, target, T, metric, diff)
    return EvalResult(
        got.rows,
        got.sbc,
        got.chosen_x,
        settings,
        T,
        run.task.name,
        run.task.reference_name,
        N,
        ep.num_initial,
        pit=got.pit,
    )


def _plan(run, settings: EvalSettings):
    """(methods, targets, horizon T, candidates N) of an evaluation, checked before any long work."""
    cfg, task = run.cfg, run.task
    e = cfg.episodes
    T = settings.horizon or e.horizon
    N = settings.num_candidates or e.num_candidates
    head = has_predictive_head(run)
    methods = settings.methods or available_methods(task, head)
    for name in methods:
        check_method(name, task, head)
    targets = settings.targets or cfg.target_names
    if T > N:
        raise TfpAlineError(f"horizon {T} exceeds the {N} candidates")
    return methods, targets, T, N


def _shared_episodes(run, settings: EvalSettings, T: int, N: int, progress: bool) -> _Episodes:
    """Simulate the B people (N candidates each) that every method runs on."""
    e, task, model = run.cfg.episodes, run.task, run.model
    n0 = e.num_initial_context if settings.num_initial_context is None else settings.num_initial_context
    m = e.num_predictive_targets
    seed = tf.constant([settings.seed, seeds.EVALUATION_EPISODES], tf.int32)
    batch = task.sample_episodes(settings.episodes, N, seed=seed, num_initial_context=n0, num_predictive_targets=m)
    theta = batch.theta.numpy().astype(np.float64)
    forward = tf.function(lambda inputs: model(inputs, compute_policy=False), reduce_retracing=True)
    return _Episodes(run, settings, batch, theta, seed, forward, T, n0, m, progress)


@dataclasses.dataclass
class _MethodRun:
    """One (target, method) run on the first n of the shared people, after its acquisition."""

    ti: int  # the target's index: part of the posterior-sampling seeds
    target: str
    method: str
    b: object  # EpisodeBatch of the n people
    tmask: tf.Tensor  # [n, L + M] bool
    pmask: np.ndarray  # [n, L] bool: the targeted parameters
    theta: np.ndarray  # [n, L] float64
    result: object  # the acquisition's result: final state, choices [T, n], seconds per step [T]
    reference_at_T: object = None  # the exact reference posterior at step T (reused by the NUTS check)


def _evaluate_method(ep: _Episodes, got: _Collected, bar, reusable: dict, ti: int, target: str, method_name: str):
    """One (target, method) run: acquire T queries, then the metrics at every step t = 0..T."""
    task, settings, T = ep.task, ep.settings, ep.horizon
    n_ep = ep.people(method_name)
    b = _subset(ep.batch, n_ep)
    tmask = target_mask(task, target, n_ep, ep.num_predictive)
    result = _acquire(ep, bar, reusable, method_name, b, tmask)
    pmask = tmask.numpy()[:, : task.num_parameters]
    r = _MethodRun(ti, target, method_name, b, tmask, pmask, ep.theta[:n_ep], result)
    got.chosen_x[(target, method_name)] = (
        tf.gather(b.query_x, tf.transpose(result.chosen), batch_dims=1).numpy().transpose(1, 0, 2)
    )
    got.rows.extend(_timing_rows(method_name, target, result, n_ep, T))
    has_params = bool(pmask.any())
    for t in range(T + 1):
        _step_metrics(ep, got, r, t, has_params)
    if settings.spce_samples:
        got.rows.extend(_spce_rows(task, r, T, settings))
    if method_name == "policy" and settings.nuts_people and has_params:
        got.rows.extend(
            _nuts_check(
                task,
                ep.model,
                ep.forward,
                result,
                b,
                tmask,
                target,
                ep.theta,
                ep.num_initial,
                T,
                settings,
                ep.progress,
                reference=r.reference_at_T,
            )
        )


def _acquire(ep: _Episodes, bar, reusable: dict, method_name: str, b, tmask):
    """The acquisition result of a method on people `b`; a target-agnostic method runs once and is reused."""
    n_ep, T = ep.people(method_name), ep.horizon
    acq = make_method(method_name, ep.run)
    if acq.target_agnostic and method_name in reusable:
        bar.update(T * n_ep)
        return reusable[method_name]  # same people, same choices: only the metrics differ
    result = run_acquisition(
        acq, b, tmask, T, [ep.settings.seed, seeds.METHOD_CHOICES], progress=_PersonSteps(bar, n_ep)
    )
    if acq.target_agnostic:
        reusable[method_name] = result
    return result


def _spce_rows(task, r: _MethodRun, T: int, settings: EvalSettings) -> list:
    """sPCE and sNMC bounds on the total EIG of all the data the method ended with (initial context
    included), and their limit log(L + 1), at step T. The contrastive set is the same for every
    method (its seed depends on the evaluation seed only)."""
    from tfp_aline.evaluation.spce import contrastive_bounds

    s = r.result.state
    bounds = contrastive_bounds(
        task,
        r.theta.astype(np.float32),
        s.context_x,
        s.context_y,
        s.context_mask,
        num_contrastive=settings.spce_samples,
        seed=(settings.seed, seeds.CONTRASTIVE),
    )
    n, limit = len(bounds.spce), bounds.limit
    return [
        (r.method, r.target, T, "spce", *M.summarize(bounds.spce)),
        (r.method, r.target, T, "snmc", *M.summarize(bounds.snmc)),
        (r.method, r.target, T, "spce_limit", limit, limit, limit, n),
    ]


def _timing_rows(method_name: str, target: str, result, n_ep: int, T: int) -> list:
    """One `ms_per_decision` row per step t = 1..T: wall time per decision per person."""
    per_decision_ms = 1e3 * result.seconds / n_ep
    rows = []
    for t in range(1, T + 1):
        ms = float(per_decision_ms[t - 1])
        rows.append((method_name, target, t, "ms_per_decision", ms, ms, ms, n_ep))
    return rows


def _step_metrics(ep: _Episodes, got: _Collected, r: _MethodRun, t: int, has_params: bool):
    """The metrics of one (target, method) run after t of its queries."""
    model = ep.model
    state = state_after(r.result.state, tf.constant(r.result.chosen), ep.num_initial, tf.constant(t))
    out = ep.forward(model_inputs(state, r.b, r.tmask))
    logq = target_log_prob(model, out, r.b, r.tmask).numpy()
    got.add(r.method, r.target, t, "log_q", logq)
    if t == ep.horizon:
        got.final_logq[(r.target, r.method)] = logq
    if ep.num_predictive:
        probs = tf.sigmoid(out["predictive_logits"]).numpy().astype(np.float64)
        _predictive_rows(got, r.method, r.target, t, probs, r.b.target_y.numpy()[..., 0], ep.settings.seed)
    if has_params:
        _parameter_metrics(ep, got, r, t, state, out)


def _predictive_rows(got: _Collected, method_name, target, t, probs, y, seed):
    """Log loss, Brier score and bootstrapped AUC of predicted probabilities [B, M] for outcomes y [B, M]."""
    got.add(method_name, target, t, "log_loss", M.log_loss(probs, y))
    got.add(method_name, target, t, "brier", M.brier(probs, y))
    got.rows.append((method_name, target, t, "auc", *M.bootstrap_auc(probs, y, seed=seed)))


def _parameter_metrics(ep: _Episodes, got: _Collected, r: _MethodRun, t: int, state, out):
    """Errors and coverage of the amortized posterior of the targeted parameters, SBC ranks of the
    policy's posterior at t = 0, T/2, T, and the same errors of the exact reference posterior."""
    settings, task, T = ep.settings, ep.task, ep.horizon
    th, pmask = r.theta, r.pmask
    q = ep.model.posterior(out)
    s_seed = tf.constant([settings.seed, seeds.posterior_samples(r.ti, t)], tf.int32)
    samples = q.sample(settings.num_samples, seed=s_seed).numpy().astype(np.float64)
    got.add(r.method, r.target, t, "rmse_mean", M.rmse_mean(q.mean().numpy(), th, pmask))
    got.add(r.method, r.target, t, "rmse_paper", M.rmse_paper(samples, th, pmask, task.support))
    got.add(r.method, r.target, t, "rmse_sample", M.rmse_sample(samples, th, pmask))
    cdf = q.cdf(tf.constant(th, tf.float32)).numpy()
    for level in COVERAGE_LEVELS:
        got.add(r.method, r.target, t, f"coverage{int(100 * level)}", M.coverage_from_cdf(cdf, pmask, level))
    if r.method in CALIBRATION_METHODS and t in (0, T // 2, T):
        _calibration(got, r, t, samples[: settings.sbc_samples], cdf)
    check, corrected_paper = _psis_metrics(ep, got, r, t, state, q, samples)
    if settings.exact:
        _exact_metrics(ep, got, r, t, state, s_seed, check, corrected_paper)


def _calibration(got: _Collected, r: _MethodRun, t: int, samples, cdf):
    """SBC ranks with their ECDF test (`sbc_ecdf_p`; `sbc_chi2_p` beside it) and the coverage curve
    over all credibility levels (`coverage_gap_max`: its largest distance from the diagonal)."""
    nan = float("nan")
    ranks = M.sbc_ranks(samples, r.theta, r.pmask)
    got.sbc[(r.target, r.method, t)] = ranks
    got.pit[(r.target, r.method, t)] = np.asarray(cdf)[r.pmask]
    s, k = len(samples), len(ranks)
    gap = np.max(np.abs(M.coverage_curve(cdf, r.pmask, CURVE_LEVELS) - np.asarray(CURVE_LEVELS)))
    got.rows += [
        (r.method, r.target, t, "sbc_ecdf_p", M.sbc_ecdf_pvalue(ranks, s), nan, nan, k),
        (r.method, r.target, t, "sbc_chi2_p", M.sbc_uniformity_pvalue(ranks, s), nan, nan, k),
        (r.method, r.target, t, "coverage_gap_max", float(gap), nan, nan, k),
    ]


def _psis_metrics(ep: _Episodes, got: _Collected, r: _MethodRun, t: int, state, q, samples):
    """The per-person PSIS check of the amortized posterior against the task's exact unnormalised
    posterior (the same draws as the other metrics): share of people with k-hat above 0.7, mean
    k-hat and ESS, and the posterior-mean and paper RMSE of the corrected posterior where k-hat <= 0.7.
    Returns the check and the corrected posterior's paper RMSE of every person [B]."""
    from tfp_aline.core.psis import KHAT_MAX, psis_check

    check = psis_check(ep.task, q, state.context_x, state.context_y, state.context_mask, samples=samples)
    got.add(r.method, r.target, t, "psis_khat_above_0.7", (check.khat > KHAT_MAX).astype(np.float64))
    got.add(r.method, r.target, t, "psis_khat", check.khat)
    got.add(r.method, r.target, t, "psis_ess", check.ess)
    corrected = M.rmse_mean(check.corrected_mean(), r.theta, r.pmask)
    paper = M.rmse_paper(check.samples, r.theta, r.pmask, ep.task.support, check.weights)
    if check.ok.any():  # the corrected posterior exists only where k-hat <= 0.7
        got.add(r.method, r.target, t, "rmse_mean_psis", corrected[check.ok])
        got.add(r.method, r.target, t, "rmse_paper_psis", paper[check.ok])
    return check, paper


def _exact_metrics(
    ep: _Episodes, got: _Collected, r: _MethodRun, t: int, state, s_seed, check=None, corrected_paper=None
):
    """Errors and 90% coverage of the task's exact reference posterior of the same data (same seed
    as the amortized posterior's samples); for an MCMC reference, the share of people whose chains
    did not converge and one row per such person (its worst R-hat and ESS). With the PSIS `check`,
    `rmse_mean_checked` is the RMSE of what a user is given: the corrected posterior's mean where
    k-hat <= 0.7, the reference's mean where not; `rmse_paper_checked` the paper's RMSE of the same
    (`corrected_paper` [B]: the corrected posterior's, from `_psis_metrics`)."""
    task, th, pmask = ep.task, r.theta, r.pmask
    posterior = reference_posterior(task, state, ep.settings.num_samples, s_seed)
    if t == ep.horizon:
        r.reference_at_T = posterior
    ref = np.asarray(posterior.samples)  # [S, n, L]
    if posterior.unconverged is not None:
        got.rows.extend(_unconverged_rows(r.method, r.target, t, posterior))
    got.add(r.method, r.target, t, "rmse_mean_exact", M.rmse_mean(ref.mean(0), th, pmask))
    exact_paper = M.rmse_paper(ref, th, pmask, task.support)
    got.add(r.method, r.target, t, "rmse_paper_exact", exact_paper)
    got.add(r.method, r.target, t, "rmse_sample_exact", M.rmse_sample(ref, th, pmask))
    got.add(r.method, r.target, t, "coverage90_exact", M.interval_coverage(ref, th, pmask, 0.9))
    if check is not None:
        checked = np.where(check.ok[:, None], check.corrected_mean(), ref.mean(0))
        got.add(r.method, r.target, t, "rmse_mean_checked", M.rmse_mean(checked, th, pmask))
        got.add(r.method, r.target, t, "rmse_paper_checked", np.where(check.ok, corrected_paper, exact_paper))


def _unconverged_rows(method: str, target: str, t: int, posterior) -> list:
    """`reference_unconverged` (share of people) and, per person whose chains failed the check,
    `reference_rhat_person_<i>` (its largest R-hat) and `reference_ess_person_<i>` (its smallest
    ESS): the people named in the warning, marked in metrics.csv."""
    bad = np.asarray(posterior.unconverged, bool)
    nan = float("nan")
    rows = [(method, target, t, "reference_unconverged", float(bad.mean()), nan, nan, len(bad))]
    rhat, ess = np.asarray(posterior.nuts.rhat), np.asarray(posterior.nuts.ess)
    for i in np.flatnonzero(bad):
        rows.append((method, target, t, f"reference_rhat_person_{i}", float(np.nanmax(rhat[i])), nan, nan, 1))
        rows.append((method, target, t, f"reference_ess_person_{i}", float(np.nanmin(ess[i])), nan, nan, 1))
    return rows


def _reference_predictions(ep: _Episodes, got: _Collected, target: str):
    """Predictive scores of references that need no queries, the same at every step: the oracle
    knows theta, the prior-only model nothing."""
    batch = ep.batch
    y = batch.target_y.numpy()[..., 0]
    for name, probs in (
        ("oracle", _oracle_probs(ep.task, batch.theta, batch.target_x)),
        ("prior", ep.task.prior_predictive_probs(batch.target_x.numpy(), ep.seed)),
    ):
        probs = np.asarray(probs, np.float64)
        for t in range(ep.horizon + 1):
            _predictive_rows(got, name, target, t, probs, y, ep.settings.seed)


def _nuts_check(task, model, forward, result, b, tmask, target, theta, n0, T, settings, progress, reference=None):
    """At step T, NUTS on the first `nuts_people` of the policy's episodes: posterior-mean RMSE of
    NUTS, of the task's reference posterior (e.g. Laplace) and of the amortized posterior, on the
    same people. When the reference itself is NUTS (`reference.nuts`, from the step-T metrics),
    its draws are used instead of a second run, so the two cannot disagree by Monte Carlo noise."""
    from tfp_aline.core.exact import nuts_posterior, warn_unconverged

    k = min(settings.nuts_people, theta.shape[0])
    state = state_after(result.state, tf.constant(result.chosen), n0, tf.constant(T))
    x, y, mask = state.context_x[:k], state.context_y[:k], state.context_mask[:k]
    reuse = reference is not None and reference.nuts is not None
    if reuse:
        nuts = reference.nuts._replace(
            draws=reference.nuts.draws[:, :, :k], rhat=reference.nuts.rhat[:k], ess=reference.nuts.ess[:k]
        )
        seconds = reference.seconds * k / int(reference.nuts.draws.shape[2])  # its share of the reference run
        reference = nuts.flat.numpy().mean(0)
    else:
        if progress:
            print(f"NUTS on {k} people (4 chains x 500 draws after 500 warm-up)...", flush=True)
        start = time.perf_counter()
        nuts = nuts_posterior(
            task, x, y, mask, num_chains=4, num_results=500, num_burnin=500, seed=(settings.seed, seeds.NUTS_CHECK)
        )
        seconds = time.perf_counter() - start
        warn_unconverged(nuts, task.parameter_names, what=f"the NUTS check at step {T} (target {target!r})")
        reference = task.reference_mean(x, y, mask, tf.constant([settings.seed, seeds.NUTS_CHECK_REFERENCE]))
    pmask = tmask.numpy()[:k, : task.num_parameters]
    th = theta[:k]
    sub = {key: v[:k] for key, v in model_inputs(state, b, tmask).items()}
    amortized = model.posterior(forward(sub)).mean().numpy()
    out = [("policy", target, T, "nuts_reuses_reference", float(reuse), float("nan"), float("nan"), k)]
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
