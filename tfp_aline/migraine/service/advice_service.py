"""The part of the service that knows nothing of HTTP: a run loaded once, and JSON-shaped days in, advice out."""

from __future__ import annotations

import datetime
import hashlib
import warnings

from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.advice import Advisor
from tfp_aline.migraine.history import OUTCOME_COLUMN, HistoryRows, HistoryWarning
from tfp_aline.migraine.service import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_DAYS
from tfp_aline.migraine.service.batched_advice import BatchedAdvisor
from tfp_aline.migraine.service.batcher import Batcher
from tfp_aline.runs import MODEL_FILE


class RequestTooLarge(TfpAlineError):
    """More days than the service accepts in one request (HTTP 413)."""


class AdviceService:
    """A trained run ready to answer: the model is loaded and traced once, at construction."""

    def __init__(
        self,
        run_dir,
        *,
        max_days: int = DEFAULT_MAX_DAYS,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_batch: int = 32,
    ):
        if max_days < 1 or max_body_bytes < 1:
            raise TfpAlineError(f"max_days and max_body_bytes must be positive, got {max_days} and {max_body_bytes}")
        self.advisor = Advisor.from_run_dir(run_dir)
        self.batched = BatchedAdvisor(self.advisor)
        # Concurrent requests share network calls: the forward pass is one worker's job.
        self.batcher = Batcher(self.batched.forward, max_batch=max_batch)
        self.max_days, self.max_body_bytes = int(max_days), int(max_body_bytes)
        model_file = self.advisor.run.path / MODEL_FILE
        self.model_sha256 = hashlib.sha256(model_file.read_bytes()).hexdigest() if model_file.exists() else ""
        self.loaded_at = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
        # The warnings are part of every answer; as Python warnings they would only fill the log.
        # Set once for the process: `warnings.catch_warnings` per request is not thread-safe.
        warnings.filterwarnings("ignore", category=HistoryWarning)
        self._warm_up()

    def _warm_up(self):
        """Trace the forward pass (one trace serves every size) and run a few sizes, so the first
        requests are not slow."""
        table = self.advisor.table
        day = dict(zip(table.names, (float(v) for v in table.mean)))
        for reported, open_days in ((self.advisor.capacity, 0), (10, 5), (20, 12)):
            days = [dict(day, **{OUTCOME_COLUMN: i % 2}) for i in range(reported)]
            days += [dict(day, **{OUTCOME_COLUMN: None}) for _ in range(open_days)]
            self.advise(days)

    def health(self) -> dict:
        """What is loaded and the request limits."""
        a = self.advisor
        return {
            "status": "ok",
            "run": str(a.run.path),
            "model_sha256": self.model_sha256,
            "loaded_at": self.loaded_at,
            "capacity": a.capacity,
            "features": list(a.table.names),
            "parameters": list(a.task.parameter_names),
            "max_days": self.max_days,
            "max_body_bytes": self.max_body_bytes,
            "forward_passes": self.batcher.batches,
            "people_advised": self.batcher.items,
        }

    def rows(self, name: str, days: list) -> HistoryRows:
        """Days as JSON objects -> the cells the history reader takes; columns in order of first appearance
        (a day without a key has an empty cell there, as a short CSV row would)."""
        if not days:
            raise TfpAlineError(f"{name}: no days given; expected one object per day")
        if len(days) > self.max_days:
            raise RequestTooLarge(f"{name}: {len(days)} days; at most {self.max_days} are accepted per request")
        header = list(dict.fromkeys(k for day in days for k in day))
        return HistoryRows(name, tuple(header), tuple(tuple(day.get(k) for k in header) for day in days))

    def prepare(self, days: list, future: list | None = None, target="all", max_context: int | None = None):
        """Check a request's days and build its model inputs; bad input raises `TfpAlineError` with the
        CLI's message."""
        history = self.rows("days", days)
        coming = self.rows("future", future) if future else None  # [] means no coming days
        if not isinstance(target, str):
            target = tuple(target)
        return self.batched.prepare(history, target=target, future_days=coming, max_context=max_context)

    def submit(self, prepared):
        """A future for the network's outputs; the forward pass is shared with whatever else waits."""
        return self.batcher.submit(prepared)

    def finish(self, prepared, outputs) -> dict:
        """The answer: the content of `tfp-aline advise --format json`."""
        return self.batched.finish(prepared, outputs)

    def advise(self, days: list, future: list | None = None, target="all", max_context: int | None = None) -> dict:
        """prepare, submit, wait, finish: one request start to end (for callers without an event loop)."""
        prepared = self.prepare(days, future, target, max_context)
        return self.finish(prepared, self.submit(prepared).result())
