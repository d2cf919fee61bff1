"""Helpers shared by the service tests (a plain module, not a conftest: tests/conftest.py is imported
as `conftest` by name, so a second one here would shadow it)."""

import functools
import warnings
from pathlib import Path

from tfp_aline.migraine.history import HistoryRows, HistoryWarning

RUN = Path(__file__).resolve().parents[3] / "models" / "migraine"


def rows(name, days):
    """JSON day objects -> the `HistoryRows` the service makes of them."""
    header = list(dict.fromkeys(k for d in days for k in d))
    return HistoryRows(name, tuple(header), tuple(tuple(d.get(k) for k in header) for d in days))


@functools.cache
def shipped_advisors():
    """(Advisor, BatchedAdvisor) on the shipped run, loaded once per test session."""
    from tfp_aline.migraine.advice import Advisor
    from tfp_aline.migraine.service.batched_advice import BatchedAdvisor

    warnings.simplefilter("ignore", HistoryWarning)
    advisor = Advisor.from_run_dir(RUN)
    return advisor, BatchedAdvisor(advisor)
