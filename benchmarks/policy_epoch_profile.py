"""Where a policy-phase epoch spends its time: the rollout's forward passes against the differentiated steps.

Run by hand, one core, at paper scale (psychometric: B=200, N=200, T=30, d=32, 3 layers):
    taskset -c 0 python benchmarks/policy_epoch_profile.py --config configs/psychometric.yaml \
        --set training.gradient_steps=8
Each part is compiled (XLA when the config's `training.jit_compile` is set, as training runs it)
and timed --repeats times after one compile call; medians in seconds, and each part's share of
the whole epoch (`Trainer.train_epoch` on a policy epoch):
- `forward, queries`: one network call at the rollout's state with the query stream (policy logits);
- `forward, no queries`: the same call without it (what warm-up and the reward need);
- `rollout`: the T + 1 forward passes that make the choices and rewards (no tape);
- `differentiated steps`: the k steps' forward and backward passes (`stepwise_gradients`);
- `epoch`: the whole policy epoch (the above plus the update and sampling).
"""

import argparse
import statistics
import tempfile
import time

import tensorflow as tf

from tfp_aline.config import load_config
from tfp_aline.core import objectives
from tfp_aline.core.rollout import rollout
from tfp_aline.core.rollout_state import initial_state, model_inputs
from tfp_aline.training.gradients import stepwise_gradients
from tfp_aline.training.trainer import Trainer


def timed(fn, repeats):
    """Median seconds of `fn()` over `repeats` calls after one (compiling) call."""
    tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        tf.nest.map_structure(lambda x: x.numpy() if hasattr(x, "numpy") else x, fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/psychometric.yaml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    # No validation: its exact reference (NUTS for a task of your own) would run at start-up and time nothing.
    cfg = load_config(args.config, [f"seed={args.seed}", "logging.validate_every=0", *args.set])
    trainer = Trainer(cfg, tempfile.mkdtemp())
    model, t, horizon = trainer.model, cfg.training, cfg.episodes.horizon
    epoch = t.warmup_epochs
    batch, tmask, noise, steps = trainer.epoch_inputs(tf.constant(epoch, tf.int64), 0, None)
    jit = t.jit_compile
    state = initial_state(batch, horizon)

    @tf.function(jit_compile=jit)
    def forward(policy):
        return model(model_inputs(state, batch, tmask), compute_policy=policy, training=True)

    @tf.function(jit_compile=jit)
    def run_rollout():
        return rollout(model, batch, tmask, horizon, "sample", noise, training=True)

    result = run_rollout()
    weights = objectives.policy_weights(objectives.step_rewards(result.logq), t.gamma, True, credit=t.credit)

    @tf.function(jit_compile=jit)
    def differentiate():
        return stepwise_gradients(
            model, batch, tmask, result.state, result.chosen, weights, t.alpha, model.trainable_variables, steps=steps
        )[0]

    counter = iter(range(epoch, epoch + 10 * (args.repeats + 1)))
    parts = {
        "forward, queries": lambda: forward(True),
        "forward, no queries": lambda: forward(False),
        "rollout": run_rollout,
        "differentiated steps": differentiate,
        "epoch": lambda: trainer.train_epoch(next(counter))[0],
    }
    seconds = {name: timed(fn, args.repeats) for name, fn in parts.items()}
    e = cfg.episodes
    print(
        f"{args.config} {' '.join(args.set)}: B={e.batch_size} N={e.num_candidates} T={horizon} "
        f"k={len(steps)} jit={jit}, median of {args.repeats}"
    )
    print("| part | seconds | share of epoch |\n|---|---|---|")
    for name, s in seconds.items():
        print(f"| {name} | {s:.3f} | {s / seconds['epoch']:.0%} |")


if __name__ == "__main__":
    main()
