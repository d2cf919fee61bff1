"""The per-person PSIS check on simulated migraine people: how often it passes, how good the
corrected posterior is against NUTS, and what it costs.

Run by hand (about 5 minutes on one core):

    PYTHONPATH=. python benchmarks/psis_check.py --run models/migraine --people 200 --steps 30 --seed 0

Each person is queried by the run's policy (greedy, as `evaluate` does) for `--steps` days;
then, on the same days, the amortized posterior's 1000 draws are importance-weighted by the exact
posterior (ArviZ PSIS) and NUTS (4 chains x 500 draws after 500 warm-up) gives the reference.
Prints the share of people with k-hat <= 0.7, posterior-mean RMSEs to the true parameters
(amortized, corrected where k-hat <= 0.7, checked = corrected or NUTS where k-hat > 0.7, NUTS),
and the check's cost per person in ms (drawing, log densities and PSIS; not the network call).
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from tfp_aline.core.acquisition import PolicyAcquisition, run_acquisition
from tfp_aline.core.exact import nuts_posterior, unconverged
from tfp_aline.core.psis import KHAT_MAX, psis_check
from tfp_aline.core.rollout_state import model_inputs, state_after
from tfp_aline.core.targets import target_mask
from tfp_aline.runs import load_run


def rmse(mean, truth):
    """Mean over people of the posterior-mean RMSE over all parameters (as `evaluate` reports it)."""
    return float(np.mean(np.sqrt(np.mean((mean - truth) ** 2, -1))))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", default="models/migraine")
    p.add_argument("--people", type=int, default=200)
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run = load_run(args.run)
    task, model, e = run.task, run.model, run.cfg.episodes
    batch = run.sample_people(args.people, tf.constant([args.seed, 0xBE5C]))
    tmask = target_mask(task, "all", args.people, e.num_predictive_targets)
    result = run_acquisition(PolicyAcquisition(model), batch, tmask, args.steps, [args.seed, 1])
    state = state_after(result.state, tf.constant(result.chosen), e.num_initial_context, tf.constant(args.steps))
    q = model.posterior(model(model_inputs(state, batch, tmask), compute_policy=False))
    truth = batch.theta.numpy().astype(np.float64)
    x, y, mask = state.context_x, state.context_y, state.context_mask

    psis_check(task, q, x, y, mask, num_samples=args.samples, seed=(args.seed, 1))  # first call untimed (warm-up)
    start = time.perf_counter()
    check = psis_check(task, q, x, y, mask, num_samples=args.samples, seed=(args.seed, 2))
    ms = 1e3 * (time.perf_counter() - start) / args.people
    start = time.perf_counter()
    nuts = nuts_posterior(task, x, y, mask, num_chains=4, num_results=500, num_burnin=500, seed=(args.seed, 3))
    nuts_s = (time.perf_counter() - start) / args.people
    nuts_mean = nuts.flat.numpy().mean(0).astype(np.float64)
    ok = check.ok
    corrected = check.corrected_mean()
    checked = np.where(ok[:, None], corrected, nuts_mean)
    amortized = q.mean().numpy().astype(np.float64)
    bad = unconverged(nuts)
    print(f"{args.run}: {args.people} simulated people, {args.steps} policy queries each, {args.samples} draws")
    print(
        f"k-hat <= {KHAT_MAX}: {ok.mean():.1%} of people (k-hat median {np.median(check.khat):.2f}, "
        f"max {check.khat.max():.2f}); ESS median {np.median(check.ess):.0f}"
    )
    print(
        f"posterior-mean RMSE to the truth: amortized {rmse(amortized, truth):.4f}, corrected (all people) "
        f"{rmse(corrected, truth):.4f}, checked (corrected or NUTS) {rmse(checked, truth):.4f}, "
        f"NUTS {rmse(nuts_mean, truth):.4f}"
    )
    if ok.any():
        c, a, n = rmse(corrected[ok], truth[ok]), rmse(amortized[ok], truth[ok]), rmse(nuts_mean[ok], truth[ok])
        print(f"on the {ok.sum()} people with k-hat <= {KHAT_MAX}: corrected {c:.4f}, amortized {a:.4f}, NUTS {n:.4f}")
        gap = np.abs(corrected[ok] - nuts_mean[ok]) / nuts.flat.numpy().std(0)[ok]
        print(f"corrected / NUTS RMSE {c / n:.4f}; |corrected - NUTS mean| / NUTS sd: median {np.median(gap):.3f}")
    print(
        f"check: {ms:.1f} ms per person; NUTS: {nuts_s:.2f} s per person "
        f"(max R-hat {nuts.rhat.numpy().max():.3f}, {bad.sum()} people not converged)"
    )


if __name__ == "__main__":
    main()
