"""The text report of one person's advice, as `tfp-aline advise` prints it."""

from __future__ import annotations

from tfp_aline.migraine.advice import Advice


def format_advice(advice: Advice, top: int = 5) -> str:
    """A readable text report: triggers with 90% intervals, risk per day, the top questions."""
    a = advice
    lines = [
        f"advice for {a.source}: {a.used_days} reported day(s) used"
        + (f", {a.dropped_days} older left out (at most {a.max_context} are used)" if a.dropped_days else "")
        + f"; target: {a.target if isinstance(a.target, str) else ', '.join(a.target)}"
    ]
    lines += [f"warning: {w}" for w in a.warnings]
    if a.check is not None:
        lines.append(a.check.line())
    t = a.triggers.copy()
    t["90% interval"] = [f"[{lo:+.2f}, {hi:+.2f}]" for lo, hi in zip(t.q05, t.q95)]
    columns = ["parameter", "category", "mean", "90% interval", "prior_mean"]
    if a.check is not None:
        t["checked"] = a.check.parameters["mean"].to_numpy()
        columns.insert(4, "checked")
    t = t[columns]
    lines += [
        "",
        "trigger weights (logit change per SD of the factor; baseline: logit of a typical day):",
        t.to_string(index=False, float_format=lambda v: f"{v:+.2f}"),
    ]
    if len(a.risk):
        r = a.risk[["day", "kind", "p_migraine"]]
        lines += [
            "",
            "p(migraine) on days without a report:",
            r.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
    if len(a.next_questions):
        qn = a.next_questions.head(top)[["rank", "day", "probability", "p_migraine"]]
        lines += [
            "",
            f"ask about next (policy probability; top {len(qn)} of {len(a.next_questions)}):",
            qn.to_string(index=False, float_format=lambda v: f"{v:.3f}"),
        ]
    else:
        lines += ["", "no unreported days left to ask about"]
    if a.what_if is not None:
        lines += ["", *a.what_if.lines()]
    return "\n".join(lines)
