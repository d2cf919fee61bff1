"""`tfp-aline evaluate`: evaluate a run dir and write report.md, metrics.csv, plots and TensorBoard curves."""
from __future__ import annotations

import shlex
import sys
from pathlib import Path

from tfp_aline.errors import TfpAlineError


def evaluate_command(run_dir, episodes=None, methods=None, out=None, seed=0, baseline_episodes=None,
                     targets=None, nuts_people=0, exact=True, progress=True, argv=None) -> int:
    """Load RUN_DIR, evaluate every method, write the report files; print where they are."""
    from tfp_aline.evaluation.evaluate import EvalSettings, evaluate_run
    from tfp_aline.evaluation.report import summary_table, to_frame, write_report
    from tfp_aline.runs import load_run

    for name, value in (("--episodes", episodes), ("--baseline-episodes", baseline_episodes)):
        if value is not None and value < 2:
            raise TfpAlineError(f"{name} must be at least 2 (intervals need two people), got {value}")
    if nuts_people < 0:
        raise TfpAlineError(f"--nuts-people must be >= 0, got {nuts_people}")
    run = load_run(run_dir)
    if targets:
        for t in targets:
            if t not in ("all", "predictive") and t not in run.task.parameter_groups \
                    and t not in run.task.parameter_names:
                raise TfpAlineError(f"--targets: unknown target {t!r} (known: all, predictive, "
                                    f"{', '.join(run.task.parameter_groups)})")
    settings = EvalSettings(episodes=episodes or run.cfg.evaluation.people, baseline_episodes=baseline_episodes,
                            methods=tuple(methods) if methods else None, targets=tuple(targets) if targets else None,
                            seed=seed, exact=exact, nuts_people=nuts_people)
    result = evaluate_run(run, settings, progress=progress)
    out = Path(out) if out is not None else Path(run_dir) / "evaluation"
    command = "tfp-aline evaluate " + " ".join(shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:]))
    paths = write_report(result, out, run_dir=run_dir, command=command, tensorboard_dir=Path(run_dir) / "eval")
    df = to_frame(result)
    for target in dict.fromkeys(df.target):
        print(f"\ntarget '{target}' after T={result.horizon} queries:")
        print(summary_table(df, target, result.horizon))
    print(f"\nwrote {len(paths)} files to {out} (report.md, metrics.csv, plots); TensorBoard: {Path(run_dir) / 'eval'}")
    return 0
