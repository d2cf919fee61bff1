"""Time one ALINE decision (posterior + policy forward pass) eagerly, with tf.function and with XLA.

One migraine episode (B = 1), 30 valid context points, a pool of 200 candidates, all 21
parameters as the target, the paper-size model, on CPU. Prints the median over --calls calls
after warm-up, in milliseconds, and the ratios between the three modes. For reference it also
times a whole greedy rollout of --horizon decisions compiled into one XLA graph (no Python
dispatch per decision) and reports its median time per decision.

    python benchmarks/forward_latency.py --seed 0 --calls 300
"""

import argparse
import os
import time

os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")  # the target is a CPU decision time

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfp_aline.core.choice import choice_noise  # noqa: E402
from tfp_aline.core.rollout import rollout  # noqa: E402
from tfp_aline.core.rollout_state import initial_state, model_inputs  # noqa: E402
from tfp_aline.core.targets import target_mask  # noqa: E402
from tfp_aline.nn.model import AlineModel  # noqa: E402
from tfp_aline.tasks import MigraineTask  # noqa: E402

NUM_CONTEXT, NUM_CANDIDATES, WARMUP = 30, 200, 20


def median_ms(forward, inputs, calls):
    """Median wall time in ms of `forward(inputs)`, including fetching the policy logits."""
    for _ in range(WARMUP):
        forward(inputs)["policy_logits"].numpy()
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        forward(inputs)["policy_logits"].numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times))


def rollout_ms_per_decision(model, batch, mask, horizon, calls):
    """Median time of a compiled `horizon`-step rollout divided by `horizon`, in ms."""
    noise = choice_noise(tf.constant([0, 1]), horizon, batch.query_x.shape[0], batch.query_x.shape[1])
    compiled = tf.function(lambda b, m: rollout(model, b, m, horizon, "greedy", noise), jit_compile=True)
    for _ in range(3):
        compiled(batch, mask).state.step.numpy()
    times = []
    for _ in range(max(1, calls // horizon)):
        start = time.perf_counter()
        compiled(batch, mask).state.step.numpy()
        times.append(time.perf_counter() - start)
    return 1e3 * float(np.median(times)) / horizon


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--horizon", type=int, default=30, help="decisions in the compiled rollout")
    parser.add_argument(
        "--threads", type=int, default=0, help="TensorFlow intra- and inter-op threads (0: TensorFlow's default)"
    )
    args = parser.parse_args(argv)
    if args.calls < 1 or args.horizon < 1:
        parser.error("--calls and --horizon must be positive")

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)
    keras.utils.set_random_seed(args.seed)
    task = MigraineTask()
    batch = task.sample_episodes(1, NUM_CANDIDATES, seed=tf.constant([args.seed, 0]), num_initial_context=NUM_CONTEXT)
    model = AlineModel(task.num_parameters, task.x_dim)  # paper defaults: d=32, 3 layers, 4 heads, K=10
    model.build()
    mask = target_mask(task, "all", 1, 0)
    inputs = model_inputs(initial_state(batch, horizon=0), batch, mask)

    modes = {
        "eager": lambda x: model(x),
        "tf.function": tf.function(lambda x: model(x)),
        "tf.function(jit_compile=True)": tf.function(lambda x: model(x), jit_compile=True),
    }
    results = {name: median_ms(forward, inputs, args.calls) for name, forward in modes.items()}

    print(
        f"B=1, context={NUM_CONTEXT}, pool={NUM_CANDIDATES}, targets={task.num_parameters} parameters, "
        f"d={model.embed_dim}, layers={model.num_layers}, heads={model.num_heads}, K={model.num_components}, "
        f"calls={args.calls}, threads(inter/intra)={tf.config.threading.get_inter_op_parallelism_threads()}/"
        f"{tf.config.threading.get_intra_op_parallelism_threads()}"
    )
    for name, ms in results.items():
        print(f"{name:>30}: {ms:8.3f} ms median")
    eager = results["eager"]
    for name in list(results)[1:]:
        print(f"{'eager / ' + name:>45}: {eager / results[name]:6.1f}x")
    print(f"{'tf.function / XLA':>45}: {results['tf.function'] / results['tf.function(jit_compile=True)']:6.1f}x")
    per_decision = rollout_ms_per_decision(model, batch, mask, args.horizon, args.calls)
    print(
        f"XLA rollout of {args.horizon} greedy decisions (context {NUM_CONTEXT}..{NUM_CONTEXT + args.horizon - 1}): "
        f"{per_decision:.3f} ms median per decision"
    )


if __name__ == "__main__":
    main()
