"""Multi-worker clusters: TF_CONFIG built from `--workers` / `--worker-index`, and which worker this
process is (only the chief writes the run dir)."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from tfp_aline.errors import ConfigError

TF_CONFIG = "TF_CONFIG"


def parse_workers(text: str) -> list[str]:
    """'host:port,host:port' -> ['host:port', ...] (IPv6 hosts in brackets: '[::1]:2222');
    raise a one-line ConfigError naming --workers and what was expected."""
    expected = "expected host:port,host:port,... (e.g. --workers 10.0.0.1:2222,10.0.0.2:2222)"
    items = [w.strip() for w in str(text).split(",")]
    if not text or not text.strip() or any(not w for w in items):
        raise ConfigError(f"--workers {text!r}: an empty entry; {expected}")
    for w in items:
        host, sep, port = w.rpartition(":")
        if not sep or not host or host in ("[]",):
            raise ConfigError(f"--workers: {w!r} has no host:port; {expected}")
        if not port.isdigit() or not 1 <= int(port) <= 65535:
            raise ConfigError(f"--workers: {w!r} has port {port!r}; expected a port from 1 to 65535")
    dup = sorted({w for w in items if items.count(w) > 1})
    if dup:
        raise ConfigError(f"--workers: {', '.join(dup)} listed twice; expected one distinct host:port per worker")
    return items


def tf_config_from_flags(workers: str | None, worker_index: int | None, environ=os.environ) -> str | None:
    """The TF_CONFIG JSON that `--workers` and `--worker-index` describe (None: neither given, and
    TF_CONFIG, if set, is used as it is). Both flags together, and not with TF_CONFIG set."""
    if workers is None and worker_index is None:
        return None
    if workers is None:
        raise ConfigError("--worker-index needs --workers, the list of every worker's host:port")
    if environ.get(TF_CONFIG):
        raise ConfigError(
            "TF_CONFIG is set and --workers is given: describe the cluster once (unset TF_CONFIG, or drop "
            "--workers and --worker-index)"
        )
    hosts = parse_workers(workers)
    if worker_index is None:
        raise ConfigError(f"--workers lists {len(hosts)} workers: --worker-index is required (0 to {len(hosts) - 1})")
    if not 0 <= worker_index < len(hosts):
        raise ConfigError(
            f"--worker-index {worker_index}: out of range for the {len(hosts)} workers of --workers "
            f"(expected 0 to {len(hosts) - 1})"
        )
    return json.dumps({"cluster": {"worker": hosts}, "task": {"type": "worker", "index": worker_index}})


class Role(NamedTuple):
    """This process's place in the cluster: task type and index, the number of workers, chief or not."""

    task_type: str | None
    task_id: int
    num_workers: int
    is_chief: bool

    @property
    def name(self) -> str:
        return f"{self.task_type or 'worker'} {self.task_id}"


def worker_role(strategy) -> Role:
    """The role of this process under `strategy`: one process (any strategy but multi_worker) is its
    own chief. In a cluster the chief is task `chief`, or worker 0 when there is no chief task (the
    rule of TensorFlow's multi-worker guides)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if resolver is None or task_type is None:
        return Role(None, 0, 1, True)
    spec = resolver.cluster_spec().as_dict()
    task_id = int(resolver.task_id or 0)
    num = sum(len(v) if isinstance(v, (list, dict)) else 1 for k, v in spec.items() if k in ("chief", "worker"))
    chief = task_type == "chief" or (task_type == "worker" and task_id == 0 and "chief" not in spec)
    return Role(task_type, task_id, max(num, 1), chief)
