"""The migraine app's commands: `generate-mock`, `advise` and `serve` (added to `tfp-aline` through
the `tfp_aline.commands` entry point)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path

from tfp_aline import quiet
from tfp_aline.errors import TfpAlineError, check_seed
from tfp_aline.paths import check_output_dir

# A day of the mock distribution holds a few dozen float64 numbers in several arrays and files:
# ten million days would already take several GB.
MAX_MOCK_DAYS = 1_000_000


def add_commands(sub) -> None:
    """Add the migraine commands to the `tfp-aline` subparsers `sub` (imports no TensorFlow)."""
    _add_generate_mock(sub)
    _add_advise(sub)
    _add_serve(sub)


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
    from tfp_aline.migraine.feature_table import read_feature_table, resolve_data_path

    if not 1 <= args.n <= MAX_MOCK_DAYS:
        raise TfpAlineError(f"--n must be a number of days from 1 to {MAX_MOCK_DAYS}, got {args.n}")
    check_seed(args.seed, "--seed")
    check_output_dir(args.out, "--out")
    start = time.perf_counter()
    # Read (and validate) the table before TensorFlow is imported: a bad table then fails fast,
    # with nothing but the one-line error on stderr.
    table = read_feature_table(args.table or resolve_data_path("data/migraine_prediction.xlsx"), sheet=args.sheet)
    quiet.import_tensorflow()
    from tfp_aline.migraine.mock_distribution import generate_mock_distribution, save_mock_distribution, summary
    from tfp_aline.migraine.task import MigraineTask

    mock = generate_mock_distribution(MigraineTask(table), n=args.n, seed=args.seed)
    paths = save_mock_distribution(mock, args.out)
    print(summary(mock))
    print("wrote " + ", ".join(str(p) for p in paths) + f" in {time.perf_counter() - start:.1f} s")
    return 0


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
    p.add_argument(
        "--what-if",
        action="append",
        default=None,
        metavar="CHANGE",
        help="risk on a day like the first future day (else the last history day) with a feature changed: "
        "'FEATURE+=DELTA', 'FEATURE-=DELTA' or 'FEATURE=VALUE' in the CSV's raw units, e.g. "
        "'Sleep duration (h)+=1'; repeat for several changes at once",
    )
    p.set_defaults(func=run_advise)


def run_advise(args) -> int:
    import json

    if args.top < 0:
        raise TfpAlineError(f"--top must be >= 0, got {args.top}")
    quiet.import_tensorflow()
    from tfp_aline.migraine.advice import Advisor
    from tfp_aline.migraine.advice_text import format_advice
    from tfp_aline.migraine.history import HistoryWarning

    advisor = Advisor.from_run_dir(args.run)
    with warnings.catch_warnings():
        # The warnings are part of the report (and of the JSON), so do not print them twice.
        warnings.simplefilter("ignore", HistoryWarning)
        advice = advisor.advise(
            args.history,
            target=args.target,
            future_days=args.future,
            max_context=args.max_context,
            what_if=args.what_if,
        )
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
    from tfp_aline.migraine.service import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DAYS

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
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="threads for numpy's BLAS (default: 1; a request is many small operations, on which more "
        "threads only busy-wait)",
    )
    p.set_defaults(func=run_serve)


def run_serve(args) -> int:
    from tfp_aline.migraine.service.command import check_serve_extra, serve_command

    check_serve_extra()  # before TensorFlow starts: without the extra, one line and exit 2
    quiet.import_tensorflow()
    return serve_command(
        args.run,
        host=args.host,
        port=args.port,
        max_days=args.max_days,
        max_body_bytes=args.max_body_bytes,
        threads=args.threads,
    )
