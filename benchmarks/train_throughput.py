"""Seconds per training epoch (warm-up and policy gradient) and peak memory, per execution mode.

Each (mode, phase) runs in its own process so that peak memory (ru_maxrss) is its own. Run by hand:
    python benchmarks/train_throughput.py --config configs/psychometric.yaml --modes xla \
        --set training.gradient_steps=8
Prints medians over --epochs timed epochs after one compile epoch, and ratios against the
authors' PyTorch code measured on this 2-core CPU for the paper-scale psychometric config
(25.8 s per policy-gradient epoch, 12.3 GB peak). `--set` takes config overrides as `train` does.
"""

import argparse
import json
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
REFERENCE_S, REFERENCE_GB = 25.8, 12.3

CHILD = """
import json, resource, sys, time, tempfile
import numpy as np, tensorflow as tf
from tfp_aline.config import load_config
from tfp_aline.training.trainer import Trainer
config, mode, phase, epochs, seed = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
overrides = json.loads(sys.argv[6])
cfg = load_config(config, [f"training.jit_compile={'true' if mode == 'xla' else 'false'}", f"seed={seed}", *overrides])
if mode == "eager":
    tf.config.run_functions_eagerly(True)
trainer = Trainer(cfg, tempfile.mkdtemp())
start = cfg.training.warmup_epochs if phase == "policy" else 0
t0 = time.perf_counter(); trainer.train_epoch(start); first = time.perf_counter() - t0
times = []
for i in range(1, epochs + 1):
    t0 = time.perf_counter(); trainer.train_epoch(start + i); times.append(time.perf_counter() - t0)
print(json.dumps(dict(first=first, median=float(np.median(times)),
                      peak_gb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6)))
"""


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=os.path.join(ROOT, "configs", "migraine-paper.yaml"))
    p.add_argument("--modes", nargs="+", default=["graph", "xla"], choices=["eager", "graph", "xla"])
    p.add_argument("--phases", nargs="+", default=["warmup", "policy"], choices=["warmup", "policy"])
    p.add_argument("--epochs", type=int, default=3, help="timed epochs after the compile epoch")
    p.add_argument("--seed", type=int, default=0, help="seed of the config (episodes, initial weights)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    args = p.parse_args(argv)
    rows = []
    for mode in args.modes:
        for phase in args.phases:
            proc = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    CHILD,
                    args.config,
                    mode,
                    phase,
                    str(args.epochs),
                    str(args.seed),
                    json.dumps(args.set),
                ],
                capture_output=True,
                text=True,
                cwd=ROOT,
                env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
            )
            if proc.returncode:
                print(f"{mode}/{phase} failed:\n{proc.stderr[-2000:]}")
                continue
            r = json.loads(proc.stdout.strip().splitlines()[-1])
            rows.append((mode, phase, r))
            print(
                f"{mode:>6} {phase:>7}: median {r['median']:7.2f} s/epoch (first, with tracing/compile: "
                f"{r['first']:6.1f} s), peak memory {r['peak_gb']:5.2f} GB",
                flush=True,
            )
    print(f"\nreference (authors' PyTorch, policy phase, this CPU): {REFERENCE_S} s/epoch, {REFERENCE_GB} GB")
    for mode, phase, r in rows:
        if phase == "policy":
            print(
                f"{mode:>6}: {REFERENCE_S / r['median']:.2f}x faster than the reference, "
                f"{r['peak_gb'] / REFERENCE_GB:.2f}x its memory"
            )


if __name__ == "__main__":
    main()
