"""Collecting the requests that wait at the same moment into one forward pass (one worker thread)."""

from __future__ import annotations

import concurrent.futures
import queue
import threading


class Batcher:
    """Runs `run_batch(items) -> results` on a worker thread for whatever has queued up, at most
    `max_batch` at a time. Nothing waits on purpose: a lone request goes through at once, and the
    requests that arrive while one batch computes form the next, so batches grow with the load."""

    def __init__(self, run_batch, max_batch: int = 32):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self._run, self.max_batch = run_batch, int(max_batch)
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self.batches = self.items = 0  # counters, for the health report
        self._thread = threading.Thread(target=self._loop, name="advice-batcher", daemon=True)
        self._thread.start()

    def submit(self, item) -> concurrent.futures.Future:
        """A future for `item`'s result (or the exception its batch raised)."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        self._queue.put((item, future))
        return future

    def _loop(self):
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            live = [(item, f) for item, f in batch if f.set_running_or_notify_cancel()]
            if not live:
                continue
            try:
                results = self._run([item for item, _ in live])
            except Exception as e:  # noqa: BLE001 - handed to every waiting request, the thread goes on
                for _, f in live:
                    f.set_exception(e)
                continue
            self.batches += 1
            self.items += len(live)
            for (_, f), r in zip(live, results):
                f.set_result(r)
