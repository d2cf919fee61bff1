"""The `tfp-aline` command line: one subcommand per job."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tfp_aline.errors import TfpAlineError


def _add_generate_mock(sub):
    p = sub.add_parser("generate-mock", help="build the mock distribution (ticket 001) from the feature table",
                       description="Simulate days from the migraine model and write the mock distribution "
                                   "(pkl, npz + json, csv, correlation heatmap).")
    p.add_argument("--table", type=Path, default=None,
                   help="feature table (.xlsx or .csv); default: data/migraine_prediction.xlsx")
    p.add_argument("--sheet", default=None, help="worksheet name (default: the first)")
    p.add_argument("--out", type=Path, default=Path("data"), help="output folder (default: data/)")
    p.add_argument("--n", type=int, default=5000, help="number of simulated days (default: 5000)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.set_defaults(func=run_generate_mock)


def run_generate_mock(args) -> int:
    from tfp_aline.feature_table import read_feature_table, resolve_data_path

    if args.n < 2:
        raise TfpAlineError(f"--n must be at least 2, got {args.n}")
    start = time.perf_counter()
    # Read (and validate) the table before TensorFlow is imported: a bad table then fails fast,
    # with nothing but the one-line error on stderr.
    table = read_feature_table(args.table or resolve_data_path("data/migraine_prediction.xlsx"), sheet=args.sheet)
    from tfp_aline.mock_distribution import generate_mock_distribution, save_mock_distribution, summary
    from tfp_aline.tasks.migraine import MigraineTask

    mock = generate_mock_distribution(MigraineTask(table), n=args.n, seed=args.seed)
    paths = save_mock_distribution(mock, args.out)
    print(summary(mock))
    print("wrote " + ", ".join(str(p) for p in paths) + f" in {time.perf_counter() - start:.1f} s")
    return 0


def _add_train(sub):
    p = sub.add_parser("train", help="train an ALINE model (warm-up, then policy gradient)",
                       description="Train on simulated episodes; logs to TensorBoard, checkpoints, "
                                   "saves model.keras and the resolved config in the run dir.")
    p.add_argument("--config", type=Path, default=None,
                   help="YAML config (required unless --resume reads the run dir's config.yaml)")
    p.add_argument("--logdir", type=Path, default=None,
                   help="run dir (default: runs/<config-name>-<timestamp>/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set training.epochs=50 (repeatable)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --logdir from its latest checkpoint")
    p.add_argument("--seed", type=int, default=None, help="override the config's seed")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--no-eval", action="store_true", help="skip the short evaluation after training")
    p.set_defaults(func=run_train)


def run_train(args) -> int:
    from tfp_aline.training.main_job import train_command

    return train_command(config=args.config, logdir=args.logdir, overrides=args.overrides,
                         resume=args.resume, seed=args.seed, progress=not args.no_progress,
                         evaluate=not args.no_eval)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tfp-aline",
        description="Amortized Bayesian inference and active data acquisition (ALINE) with TFP.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_generate_mock(sub)
    _add_train(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TfpAlineError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
