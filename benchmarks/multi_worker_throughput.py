"""Episodes per second of a 2-worker cluster (local processes on 127.0.0.1) against one process with
the same global batch: `tfp-aline train` run as users run it, the rate read from the chief's
TensorBoard `perf/epochs_per_s` (median per phase, the first epoch of each phase, which compiles,
left out), times episodes.batch_size. Run by hand, e.g.:

    taskset -c 0 python benchmarks/multi_worker_throughput.py --set training.epochs=40 \
        --set training.warmup_epochs=20

(`taskset -c 0` puts every process on one core; leave it out to give them the machine.)
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rates(run_dir: Path, warmup: int):
    """(warm-up, policy) median epochs per second from the run's events, first epoch of each left out."""
    import tensorflow as tf
    from tensorboard.backend.event_processing import event_accumulator

    acc = event_accumulator.EventAccumulator(str(run_dir), size_guidance={"tensors": 0})
    acc.Reload()
    by_step = {e.step: float(tf.make_ndarray(e.tensor_proto)) for e in acc.Tensors("perf/epochs_per_s")}
    warm = [v for s, v in by_step.items() if 1 < s <= warmup]
    policy = [v for s, v in by_step.items() if s > warmup + 1]
    return (float(np.median(warm)) if warm else None), (float(np.median(policy)) if policy else None)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "smoke.yaml"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = p.parse_args(argv)
    quiet_logs = ["logging.images_every=100000", "logging.histograms_every=100000"]
    sets = [a for kv in [*quiet_logs, *args.set] for a in ("--set", kv)]
    from tfp_aline.config import load_config

    cfg = load_config(args.config, args.set)
    batch, warmup = cfg.episodes.batch_size, cfg.training.warmup_epochs
    env = dict(os.environ, PYTHONPATH=os.environ.get("PYTHONPATH", str(ROOT)), TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    base = [sys.executable, "-m", "tfp_aline", "train", "--config", args.config, "--no-eval", "--no-progress", *sets]
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        workers = ",".join(f"127.0.0.1:{free_port()}" for _ in range(2))
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(
                [*base, "--logdir", f"{tmp}/cluster", "--workers", workers, "--worker-index", str(i)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for i in range(2)
        ]
        for proc in procs:
            text = proc.communicate()[0]
            if proc.returncode:
                sys.exit(f"a worker failed:\n{text}")
        out["2 workers"] = (time.perf_counter() - t0, *rates(Path(tmp) / "cluster", warmup))
        t0 = time.perf_counter()
        single = subprocess.run([*base, "--logdir", f"{tmp}/single"], env=env, capture_output=True, text=True)
        if single.returncode:
            sys.exit(f"the one-process run failed:\n{single.stdout}{single.stderr}")
        out["1 process"] = (time.perf_counter() - t0, *rates(Path(tmp) / "single", warmup))
    print(f"global batch {batch} episodes, {cfg.training.epochs} epochs ({warmup} warm-up), config {args.config}")
    print(f"{'':>10}  {'whole command s':>15}  {'warm-up episodes/s':>18}  {'policy episodes/s':>17}")
    for name, (wall, warm, policy) in out.items():
        f = lambda r: f"{r * batch:.1f}" if r else "-"  # noqa: E731
        print(f"{name:>10}  {wall:15.1f}  {f(warm):>18}  {f(policy):>17}")
    print(json.dumps({k: dict(wall_s=v[0], warmup_eps=v[1] and v[1] * batch, policy_eps=v[2] and v[2] * batch)
                      for k, v in out.items()}))  # fmt: skip


if __name__ == "__main__":
    main()
