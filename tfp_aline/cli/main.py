"""The `tfp-aline` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

from tfp_aline import quiet
from tfp_aline.errors import ConvergenceWarning, TfpAlineError, check_seed
from tfp_aline.paths import check_output_dir, check_replaceable

# A day of the mock distribution holds a few dozen float64 numbers in several arrays and files:
# ten million days would already take several GB.
MAX_MOCK_DAYS = 1_000_000


def _add_generate_mock(sub):
    p = sub.add_parser(
        "generate-mock",
        help="build the mock distribution (prior, simulated days, mock posterior) from the table",
        description="Simulate days from the migraine model and write the mock distribution "
        "(pkl, npz + json, csv, correlation heatmap).",
    )
    p.add_argument(
        "--table", type=Path, default=None, help="feature table (.xlsx or .csv); default: data/migraine_prediction.xlsx"
    )
    p.add_argument("--sheet", default=None, help="worksheet name (default: the first)")
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data/)")
    p.add_argument("--n", type=int, default=5000, help="number of simulated days (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run_generate_mock)


def run_generate_mock(args) -> int:
    from tfp_aline.tasks.migraine.feature_table import read_feature_table, resolve_data_path

    if not 1 <= args.n <= MAX_MOCK_DAYS:
        raise TfpAlineError(f"--n must be a number of days from 1 to {MAX_MOCK_DAYS}, got {args.n}")
    check_seed(args.seed, "--seed")
    check_output_dir(args.out, "--out")
    start = time.perf_counter()
    # Read (and validate) the table before TensorFlow is imported: a bad table then fails fast,
    # with nothing but the one-line error on stderr.
    table = read_feature_table(args.table or resolve_data_path("data/migraine_prediction.xlsx"), sheet=args.sheet)
    quiet.import_tensorflow()
    from tfp_aline.tasks.migraine.mock_distribution import generate_mock_distribution, save_mock_distribution, summary
    from tfp_aline.tasks.migraine.task import MigraineTask

    mock = generate_mock_distribution(MigraineTask(table), n=args.n, seed=args.seed)
    paths = save_mock_distribution(mock, args.out)
    print(summary(mock))
    print("wrote " + ", ".join(str(p) for p in paths) + f" in {time.perf_counter() - start:.1f} s")
    return 0


def _add_train(sub):
    p = sub.add_parser(
        "train",
        help="train an ALINE model (warm-up, then policy gradient)",
        description="Train on simulated episodes; logs to TensorBoard, checkpoints, "
        "saves model.keras and the resolved config in the run dir.",
    )
    p.add_argument(
        "--config",
        type=Path,
        default=None,
        help="YAML config (required unless --resume reads the run dir's config.yaml)",
    )
    p.add_argument("--logdir", type=Path, default=None, help="run dir (default: runs/<config-name>-<timestamp>/)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set training.epochs=50 (repeatable)",
    )
    p.add_argument("--resume", action="store_true", help="continue the run in --logdir from its latest checkpoint")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-eval", action="store_true", help="skip the short evaluation after training")
    p.add_argument(
        "--workers",
        default=None,
        metavar="HOST:PORT,...",
        help="train on a cluster: every worker's host:port, the same list on each (sets training.strategy="
        "multi_worker and builds TF_CONFIG; or set TF_CONFIG yourself); see docs/multi-worker.md",
    )
    p.add_argument(
        "--worker-index", type=int, default=None, metavar="I", help="this worker's place in --workers (0: the chief)"
    )
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from tfp_aline.cluster import TF_CONFIG, tf_config_from_flags

    if args.logdir is not None:
        check_output_dir(args.logdir, "--logdir")  # before TensorFlow starts
    tf_config = tf_config_from_flags(args.workers, args.worker_index)
    if tf_config is not None:  # read by MultiWorkerMirroredStrategy
        os.environ[TF_CONFIG] = tf_config
        args.overrides = [*args.overrides, "training.strategy=multi_worker"]
    quiet.import_tensorflow()
    from tfp_aline.cli.train import train_command

    return train_command(
        config=args.config,
        logdir=args.logdir,
        overrides=args.overrides,
        resume=args.resume,
        seed=args.seed,
        progress=not args.no_progress,
        evaluate=not args.no_eval,
    )


def _add_advise(sub):
    p = sub.add_parser(
        "advise",
        help="advice for one person: trigger weights, risk, the next day to ask about",
        description="Read a person's days (CSV: one column per feature in raw units, optional "
        "'date', 'migraine' = 1/0/empty) and print the posterior of each trigger "
        "weight, p(migraine) for unreported and future days, and which day to ask "
        "about next.",
    )
    p.add_argument("--run", type=Path, required=True, help="trained run dir (config.yaml + model.keras)")
    p.add_argument("--history", type=Path, required=True, help="the person's days as CSV")
    p.add_argument(
        "--target", default="all", help="all (default), a category (e.g. sleep), a parameter name, or predictive"
    )
    p.add_argument("--future", type=Path, default=None, help="CSV of coming days (features only) to predict")
    p.add_argument(
        "--max-context",
        type=int,
        default=None,
        help="reported days given to the model, most recent first (default: the training capacity)",
    )
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.add_argument("--top", type=int, default=5, help="questions shown in the table (default: 5)")
    p.set_defaults(func=run_advise)


def run_advise(args) -> int:
    import json

    if args.top < 0:
        raise TfpAlineError(f"--top must be >= 0, got {args.top}")
    quiet.import_tensorflow()
    from tfp_aline.tasks.migraine.advice import Advisor, format_advice
    from tfp_aline.tasks.migraine.history import HistoryWarning

    advisor = Advisor.from_run_dir(args.run)
    with warnings.catch_warnings():
        # The warnings are part of the report (and of the JSON), so do not print them twice.
        warnings.simplefilter("ignore", HistoryWarning)
        advice = advisor.advise(args.history, target=args.target, future_days=args.future, max_context=args.max_context)
    _check_finite(advice)
    print(
        json.dumps(advice.to_dict(), indent=2, ensure_ascii=False)
        if args.format == "json"
        else format_advice(advice, top=args.top)
    )
    return 0


def _check_finite(advice):
    """Never print NaN advice: non-finite network outputs mean the inputs were out of reach."""
    import numpy as np

    bad = [
        k
        for k, v in advice.outputs.items()
        if np.issubdtype(np.asarray(v).dtype, np.floating) and not np.isfinite(np.asarray(v)).all()
    ]
    if bad:
        raise TfpAlineError(
            f"{advice.source}: the model returned non-finite values ({', '.join(bad)}) "
            "for these days; check the history for extreme values or wrong units"
        )


def _add_serve(sub):
    from tfp_aline.service import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DAYS

    p = sub.add_parser(
        "serve",
        help="answer advice requests over HTTP (JSON API; needs the 'serve' extra)",
        description="Load a trained run once and serve POST /advice (a person's days as JSON rows -> "
        "the advice of `advise --format json`) and GET /health; the schema is at /docs and /openapi.json.",
    )
    p.add_argument("--run", type=Path, required=True, help="trained run dir (config.yaml + model.keras)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1; 0.0.0.0 for all)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    p.add_argument(
        "--max-days", type=int, default=DEFAULT_MAX_DAYS, help=f"most days per request (default: {DEFAULT_MAX_DAYS})"
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES,
        help=f"largest request body in bytes (default: {DEFAULT_MAX_BODY_BYTES})",
    )
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from tfp_aline.cli.serve import check_serve_extra, serve_command

    check_serve_extra()  # before TensorFlow starts: without the extra, one line and exit 2
    quiet.import_tensorflow()
    return serve_command(
        args.run, host=args.host, port=args.port, max_days=args.max_days, max_body_bytes=args.max_body_bytes
    )


def _add_export(sub):
    p = sub.add_parser(
        "export",
        help="write a TensorFlow SavedModel (posterior, predictive, policy signatures)",
        description="Export a trained run as a SavedModel that TensorFlow alone can load and "
        "TensorFlow Serving can serve; inputs are raw-unit features.",
    )
    p.add_argument("--run", type=Path, required=True, help="trained run dir")
    p.add_argument("--out", type=Path, required=True, help="output folder for the SavedModel")
    p.add_argument("--force", action="store_true", help="replace a non-empty --out")
    p.set_defaults(func=run_export)


def run_export(args) -> int:
    check_output_dir(args.out, "--out", must_be_empty=not args.force)  # before loading anything
    check_replaceable(args.out, "--out", keep=[args.run])
    quiet.import_tensorflow()
    from tfp_aline.export import SIGNATURES, export_saved_model
    from tfp_aline.runs import load_run

    out = export_saved_model(load_run(args.run), args.out, overwrite=args.force)
    print(f"wrote SavedModel {out} (signatures: {', '.join(SIGNATURES)}; inputs described in {out}/signature.json)")
    return 0


def _add_evaluate(sub):
    p = sub.add_parser(
        "evaluate",
        help="evaluate a trained run against exact posteriors and baselines",
        description="Run the learned policy and the baselines on identical simulated people; "
        "write report.md, metrics.csv, PNG plots and TensorBoard curves.",
    )
    p.add_argument("--run", type=Path, required=True, help="run dir (holds config.yaml and model.keras)")
    p.add_argument(
        "--episodes",
        type=int,
        default=None,
        help="simulated people per target (default: the config's evaluation.people)",
    )
    p.add_argument(
        "--baseline-episodes", type=int, default=None, help="people for the non-amortized baselines (default: all)"
    )
    p.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help="methods to run (default: every method the run's task offers: policy, random, uncertainty "
        "sampling for binary outcomes, and the task's own baselines; an unknown name lists them)",
    )
    p.add_argument("--targets", nargs="+", default=None, help="targets (default: the config's targets)")
    p.add_argument(
        "--nuts-people",
        type=int,
        default=0,
        help="NUTS check of the policy's final posterior on this many people, any task (default 0)",
    )
    p.add_argument("--no-exact", action="store_true", help="skip the exact reference posterior at every step")
    p.add_argument(
        "--spce-samples",
        type=int,
        default=100_000,
        help="contrastive prior draws L of the sPCE/sNMC bounds on total EIG at step T; 0 skips them "
        "(default 100000; the paper uses 1e6 for location finding)",
    )
    p.add_argument(
        "--pool", type=int, default=None, help="candidates per person (default: the config's episodes.num_candidates)"
    )
    p.add_argument("--horizon", type=int, default=None, help="queries per person (default: the config's)")
    p.add_argument(
        "--initial-context",
        type=int,
        default=None,
        help="random designs every method starts from, before its queries (default: the config's "
        "episodes.num_initial_context; the paper's BED protocol: 1)",
    )
    p.add_argument("--out", type=Path, default=None, help="output dir (default: RUN_DIR/evaluation)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run_evaluate)


def run_evaluate(args) -> int:
    from tfp_aline.cli.evaluate import evaluate_command  # checks its arguments, then imports TensorFlow

    check_seed(args.seed, "--seed")

    return evaluate_command(
        args.run,
        episodes=args.episodes,
        methods=args.methods,
        out=args.out,
        seed=args.seed,
        baseline_episodes=args.baseline_episodes,
        targets=args.targets,
        nuts_people=args.nuts_people,
        exact=not args.no_exact,
        progress=not args.no_progress,
        argv=args.argv,
        spce_samples=args.spce_samples,
        pool=args.pool,
        horizon=args.horizon,
        initial_context=args.initial_context,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfp-aline", description="Amortized Bayesian inference and active data acquisition (ALINE) with TFP."
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help=f"show TensorFlow's own start-up and C++ logs (also: {quiet.ENV_VERBOSE}=1)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate_mock(sub)
    _add_train(sub)
    _add_evaluate(sub)
    _add_advise(sub)
    _add_export(sub)
    _add_serve(sub)
    return parser


def _one_line_warnings(show):
    """`warnings.showwarning` that prints a `ConvergenceWarning` as one `warning: ...` line (no
    file name, no source line) and passes every other warning to `show`."""

    def one_line(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, ConvergenceWarning):
            print(f"warning: {message}", file=sys.stderr, flush=True)
        else:
            show(message, category, filename, lineno, file, line)

    return one_line


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv  # the command line as given, for reports
    quiet.configure(args.verbose)  # before anything imports TensorFlow
    stdout = sys.stdout
    sys.stdout = _ClosedPipeSafe(stdout)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return args.func(args)
    except TfpAlineError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 2)  # 2 for bad input; 128 + signal for a stopped run
    except MemoryError:
        print(f"error: {args.command}: out of memory; use smaller settings or inputs", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        sys.stdout.flush()  # a pipe closed early fails here, through the wrapper, not at exit
        sys.stdout = stdout


class _ClosedPipeSafe:
    """stdout that survives a reader closing early (`tfp-aline train ... | head -2`): the command
    goes on to the end (the training, its evaluation.json) and the rest of its output is dropped."""

    def __init__(self, stream):
        self._stream = stream

    def _drop_the_rest(self):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self._stream.fileno())  # also for the flush at interpreter exit
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass

    def write(self, text):
        try:
            return self._stream.write(text)
        except BrokenPipeError:
            self._drop_the_rest()
            return len(text)

    def flush(self):
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._drop_the_rest()

    def __getattr__(self, name):
        return getattr(self._stream, name)


if __name__ == "__main__":
    sys.exit(main())
