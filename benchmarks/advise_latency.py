"""Time one warm `advise` call (60 logged days, 20 unreported) and the exported SavedModel's signatures.

Uses data/example_person.csv (simulated; 40 reported days, 20 unreported) and a trained run dir.
Prints medians over --calls calls after warm-up, in milliseconds: `Advisor.advise` on the
parsed history and from the CSV path, then the `posterior`, `predictive` and `policy` signatures
of a SavedModel exported to a temporary folder (same inputs, numpy in and out), and the ratios.

    python benchmarks/advise_latency.py --run /tmp/smoke-advise --calls 200
"""

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_aline.export import export_saved_model  # noqa: E402
from tfp_aline.migraine.advice import Advisor  # noqa: E402
from tfp_aline.migraine.history import HistoryWarning  # noqa: E402

EXAMPLE = Path(__file__).resolve().parent.parent / "data" / "example_person.csv"
WARMUP = 10


def median_ms(fn, calls):
    """Median wall time of fn() in ms after WARMUP untimed calls."""
    for _ in range(WARMUP):
        fn()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True, help="trained run dir")
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0, help="global seed (the timed calls draw nothing)")
    parser.add_argument("--history", type=Path, default=EXAMPLE)
    parser.add_argument(
        "--max-context", type=int, default=None, help="reported days given to the model (default: the run's capacity)"
    )
    args = parser.parse_args(argv)
    if args.calls < 1:
        parser.error("--calls must be positive")
    keras.utils.set_random_seed(args.seed)
    warnings.simplefilter("ignore", HistoryWarning)

    advisor = Advisor.from_run_dir(args.run)
    history = advisor.read(args.history)
    advice = advisor.advise(history, max_context=args.max_context)
    results = {
        "advise(parsed history)": median_ms(lambda: advisor.advise(history, max_context=args.max_context), args.calls),
        "advise(CSV path)": median_ms(lambda: advisor.advise(args.history, max_context=args.max_context), args.calls),
    }
    x = advice.inputs
    num_parameters = advisor.task.num_parameters
    ctx = {k: x[k] for k in ("context_x", "context_y", "context_mask")}
    feeds = {
        "posterior": dict(ctx, target_mask=x["target_mask"][:, :num_parameters]),
        "predictive": dict(ctx, target_x=x["target_x"], target_mask=x["target_mask"]),
        "policy": {
            k: x[k] for k in ("context_x", "context_y", "context_mask", "target_x", "target_mask", "query_x", "taken")
        },
    }
    with tempfile.TemporaryDirectory() as tmp:
        saved = tf.saved_model.load(str(export_saved_model(advisor.run, Path(tmp) / "saved")))
        for name, feed in feeds.items():
            sig = saved.signatures[name]
            results[f"SavedModel {name}"] = median_ms(
                lambda sig=sig, feed=feed: {k: v.numpy() for k, v in sig(**feed).items()}, args.calls
            )

    print(
        f"run {args.run}: {history.num_days} logged days, {history.num_reported} reported, "
        f"{history.num_days - history.num_reported} unreported; {advice.used_days} reported days used "
        f"(capacity {advisor.capacity}); calls={args.calls}; threads(inter/intra)="
        f"{tf.config.threading.get_inter_op_parallelism_threads()}/"
        f"{tf.config.threading.get_intra_op_parallelism_threads()} (0 = TensorFlow's default)"
    )
    for name, ms in results.items():
        print(f"{name:>26}: {ms:8.3f} ms median")
    policy = results["SavedModel policy"]
    print(f"{'advise(parsed) / policy':>26}: {results['advise(parsed history)'] / policy:8.1f}x")
    print(f"{'advise(CSV) / policy':>26}: {results['advise(CSV path)'] / policy:8.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
