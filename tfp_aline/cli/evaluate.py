"""`tfp-aline evaluate`: evaluate a run dir and write report.md, metrics.csv, plots and TensorBoard curves.

SIGINT, SIGTERM and SIGHUP finish the (target, method) run in flight, write the runs finished so
far to OUT-partial/ (OUT itself is left as it was) and exit with 128 + the signal number; the same
signal again stops at once. Every file is written atomically, so none is ever half-written.
"""

from __future__ import annotations

import shlex
import signal
from pathlib import Path

from tfp_aline import atomic, quiet
from tfp_aline.errors import Stopped, TfpAlineError, write_problem
from tfp_aline.paths import check_output_dir, check_report_dir

REFERENCES = ("oracle", "prior")  # rows that need no queries: not a method run of their own
PARTIAL_SUFFIX = "-partial"


def evaluate_command(
    run_dir,
    episodes=None,
    methods=None,
    out=None,
    seed=0,
    baseline_episodes=None,
    targets=None,
    nuts_people=0,
    exact=True,
    progress=True,
    argv=None,
    spce_samples=100_000,
    pool=None,
    horizon=None,
    initial_context=None,
) -> int:
    """Load RUN_DIR, evaluate every method, write the report files; print where they are."""
    for name, value in (("--episodes", episodes), ("--baseline-episodes", baseline_episodes)):
        if value is not None and value < 2:
            raise TfpAlineError(f"{name} must be at least 2 (intervals need two people), got {value}")
    for name, value, low in (("--pool", pool, 1), ("--horizon", horizon, 1), ("--initial-context", initial_context, 0)):
        if value is not None and value < low:
            raise TfpAlineError(f"{name} must be at least {low}, got {value}")
    if spce_samples < 0:
        raise TfpAlineError(f"--spce-samples must be >= 0 (0 skips the bounds), got {spce_samples}")
    sizes = dict(spce_samples=spce_samples, num_candidates=pool, horizon=horizon, num_initial_context=initial_context)
    if nuts_people < 0:
        raise TfpAlineError(f"--nuts-people must be >= 0, got {nuts_people}")
    out = Path(out) if out is not None else Path(run_dir) / "evaluation"
    tensorboard_dir = Path(run_dir) / "eval"
    check_output_dir(out, "--out")  # before the work, not after it
    check_report_dir(out, "--out", keep=[run_dir])  # replaced as a whole at the end
    check_report_dir(out.with_name(out.name + PARTIAL_SUFFIX), "the partial-results folder", keep=[run_dir])
    check_output_dir(tensorboard_dir, "the TensorBoard folder")
    quiet.import_tensorflow()
    from tfp_aline.signals import stop_on_signals

    # argv: the command line after the program name, subcommand included (None: called from Python)
    argv = argv if argv is not None else ["evaluate", "--run", str(run_dir), "--seed", str(seed)]
    command = "tfp-aline " + " ".join(shlex.quote(a) for a in argv)
    received, stopped = [], []

    def on_signal(signum):
        received.append(signum)
        print(
            f"{signal.Signals(signum).name} received: finishing the method in flight, then writing the "
            "partial results (send it again to stop at once)",
            flush=True,
        )

    def should_stop():
        if received:
            stopped.append(True)
        return bool(received)

    with stop_on_signals(on_signal):
        result = _evaluate(
            run_dir,
            episodes,
            methods,
            seed,
            baseline_episodes,
            targets,
            nuts_people,
            exact,
            progress,
            should_stop,
            sizes,
        )
        if stopped:
            _write_partial(result, received[0], out, run_dir, command)  # raises Stopped
        paths = _write(result, out, run_dir, command, tensorboard_dir)
    print(f"\nwrote {len(paths)} files to {out} (report.md, metrics.csv, plots); TensorBoard: {tensorboard_dir}")
    return 0


def _evaluate(
    run_dir, episodes, methods, seed, baseline_episodes, targets, nuts_people, exact, progress, should_stop, sizes
):
    from tfp_aline.core.target_names import check_target_name
    from tfp_aline.devices import describe_devices
    from tfp_aline.evaluation.evaluate import EvalSettings, evaluate_run
    from tfp_aline.runs import load_run

    run = load_run(run_dir)
    print(f"device: {describe_devices()}", flush=True)
    for t in targets or ():
        check_target_name(t, run.task.parameter_groups, run.task.parameter_names, where="--targets: ")
    settings = EvalSettings(
        episodes=episodes or run.cfg.evaluation.people,
        baseline_episodes=baseline_episodes,
        methods=tuple(methods) if methods else None,
        targets=tuple(targets) if targets else None,
        seed=seed,
        exact=exact,
        nuts_people=nuts_people,
        **sizes,
    )
    return evaluate_run(run, settings, progress=progress, should_stop=should_stop)


def _write(result, out, run_dir, command, tensorboard_dir):
    from tfp_aline.evaluation.report import summary_table, to_frame, write_report, write_tensorboard

    try:
        with atomic.atomic_dir(out) as tmp:  # an older report is replaced whole, never mixed with this one
            names = [p.name for p in write_report(result, tmp, run_dir=run_dir, command=command)]
    except OSError as e:
        kept = f"{out} is unchanged" if out.exists() else "nothing was written"
        raise TfpAlineError(f"--out {out}: cannot write the report ({write_problem(e)}); {kept}") from None
    write_tensorboard(to_frame(result), tensorboard_dir)
    paths = [out / n for n in names]
    df = to_frame(result)
    for target in dict.fromkeys(df.target):
        print(f"\ntarget '{target}' after T={result.horizon} queries:")
        print(summary_table(df, target, result.horizon))
    return paths


def _write_partial(result, signum, out: Path, run_dir, command):
    """Write the finished (target, method) runs to OUT-partial/ (replaced as a whole), then raise Stopped."""
    from tfp_aline.evaluation.report import write_report

    name = signal.Signals(signum).name
    untouched = f" ({out} is unchanged)" if out.exists() else ""
    done = [(t, m) for m, t in dict.fromkeys((r[0], r[1]) for r in result.rows) if m not in REFERENCES]
    if not done:
        raise Stopped(
            f"{name} received: evaluation stopped before any method run finished; nothing written{untouched}", signum
        )
    kept = {t for t, _ in done}
    result.rows = [r for r in result.rows if r[1] in kept]  # drop references of targets not reached
    partial = out.with_name(out.name + PARTIAL_SUFFIX)
    try:
        with atomic.atomic_dir(partial) as tmp:  # an older partial result is replaced whole
            write_report(result, tmp, run_dir=run_dir, command=f"{command}  (stopped by {name}: partial)")
    except OSError as e:
        raise Stopped(
            f"{name} received: evaluation stopped; the partial results could not be written to "
            f"{partial} ({e.strerror or e})",
            signum,
        ) from None
    runs = ", ".join(f"{m} on {t}" for t, m in done)
    raise Stopped(
        f"{name} received: evaluation stopped after {len(done)} method run(s) ({runs}); partial "
        f"results in {partial}{untouched}",
        signum,
    )
