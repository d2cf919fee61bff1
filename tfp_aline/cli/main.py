"""The `tfp-aline` command line: one subcommand per job."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from pathlib import Path

from tfp_aline import quiet
from tfp_aline.errors import ConvergenceWarning, TfpAlineError, check_seed
from tfp_aline.paths import check_output_dir, check_replaceable


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
        help="YAML config file, or a shipped config's name (e.g. migraine, smoke; required unless --resume "
        "reads the run dir's config.yaml)",
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
    _add_train(sub)
    _add_evaluate(sub)
    _add_export(sub)
    _add_tasks(sub)
    _add_plugin_commands(sub)
    return parser


COMMANDS_GROUP = "tfp_aline.commands"


def _add_plugin_commands(sub):
    """The commands that installed packages add (entry point group `tfp_aline.commands`: a function
    `add_commands(subparsers)`), e.g. the migraine app's `advise`. A broken plug-in costs its own
    commands only, with one line on stderr."""
    from importlib.metadata import entry_points

    from tfp_aline.tasks.names import first_line

    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        try:
            ep.load()(sub)
        except Exception as e:  # a third party's code: never let it take the other commands down
            print(f"warning: commands of {ep.name!r} ({ep.value}) not added: {first_line(e)}", file=sys.stderr)


def _add_tasks(sub):
    p = sub.add_parser(
        "tasks",
        help="list the installed tasks (models) a config can name",
        description="List the tasks that installed packages register (entry point group tfp_aline.tasks); "
        "any other task is named in a config by import path, task.class: 'package.module:ClassName'.",
    )
    p.set_defaults(func=run_tasks)


def run_tasks(args) -> int:
    from tfp_aline.tasks.registry import installed_tasks

    found = installed_tasks()
    if not found:
        print("no installed tasks (install tfp_aline, e.g. pip install -e ., to register the built-in ones)")
    for name, path in found.items():
        print(f"{name}\t{path}")
    return 0


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
