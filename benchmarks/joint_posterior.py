"""The joint posterior head against the exact posterior on the same data: log q of the true
parameters (joint against the product of marginals), posterior correlations, and the marginals.

Run by hand, on a run trained with `network.joint: mixture_tril` or `copula` (about 5 minutes on one
core for migraine with NUTS, 1 for psychometric with its grid; the copula's moments and draws cost more):

    python benchmarks/joint_posterior.py --run models/migraine-joint --groups sleep,stress sleep+stress \
        --people 200 --seed 0
    python benchmarks/joint_posterior.py --run models/psychometric-joint --groups threshold+slope --people 200 --seed 0

Each group is a '+'-joined list of the task's parameter groups or single parameters; a ',' gives
several groups in one argument. For each query method (random; the run's policy, greedy, aimed
at target 'all') and each step t, on the same simulated people and days:
- `joint`, `product`: mean over people of log q(theta_S) of the true parameters of the group S
  under the joint head and under the product of the marginal mixtures (higher is better);
- `corr_err`: mean over people and pairs of |r_q - r_exact|, the joint's posterior correlation
  (closed-form mixture moments; for a copula, from 4000 of its draws) against the exact
  reference's (NUTS draws, or the task's own reference, e.g. psychometric's dense grid, with
  `--reference task`); `|r_exact|` beside it;
- `rmse_marg`, `rmse_joint`, `rmse_exact`: posterior-mean RMSE over the group's parameters, of
  the marginals, the joint and the reference;
- per method and step, the share of people passing the PSIS check (k-hat <= 0.7, 1000 draws)
  with the marginals as the proposal and with the joint over all parameters.
"""

import argparse
import itertools

import numpy as np
import tensorflow as tf

from tfp_aline.core.acquisition import PolicyAcquisition, RandomAcquisition, run_acquisition
from tfp_aline.core.exact import nuts_posterior
from tfp_aline.core.joint import joint_posterior, mixture_moments
from tfp_aline.core.psis import KHAT_MAX, psis_check
from tfp_aline.core.rollout_state import model_inputs, state_after
from tfp_aline.core.targets import target_mask
from tfp_aline.nn.model import AlineModel
from tfp_aline.runs import load_run


def group_indices(task, spec):
    """'sleep+stress' -> the sorted parameter indices of those groups (or single parameters)."""
    names = list(task.parameter_names)
    out = []
    for part in spec.split("+"):
        if part in task.parameter_groups:
            out += list(task.parameter_groups[part])
        elif part in names:
            out.append(names.index(part))
        else:
            raise SystemExit(f"--groups: {part!r} is neither a parameter group nor a parameter of {task.name}")
    return sorted(set(out))


def correlations(cov):
    """[..., D, D] covariance -> correlation matrix."""
    sd = np.sqrt(np.diagonal(cov, axis1=-2, axis2=-1))
    return cov / (sd[..., :, None] * sd[..., None, :])


def moments(q, seed):
    """Mean [P, D] and covariance [P, D, D] of a joint posterior: closed form for the mixture of Gaussians,
    from 4000 draws for the copula (a transformed distribution, no closed form)."""
    if not hasattr(q, "bijector"):  # a mixture of Gaussians (the copula is a transformed distribution)
        return tuple(v.numpy() for v in mixture_moments(q))
    draws = q.sample(4000, seed=tf.constant(seed)).numpy().astype(np.float64)
    mean = draws.mean(0)
    centred = draws - mean
    return mean, np.einsum("spi,spj->pij", centred, centred) / len(draws)


def reference_draws(task, x, y, mask, how, samples, seed):
    """[S, P, L] exact posterior draws of P people."""
    if how == "nuts":
        return nuts_posterior(task, x, y, mask, num_chains=4, num_results=500, num_burnin=500, seed=seed).flat.numpy()
    return np.asarray(task.reference_posterior(x, y, mask, samples, tf.constant(seed)).samples)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", required=True)
    p.add_argument("--groups", nargs="+", required=True)
    p.add_argument("--people", type=int, default=200)
    p.add_argument("--steps", type=int, nargs="+", default=[15, 30])
    p.add_argument("--reference", choices=("nuts", "task"), default="nuts")
    p.add_argument("--samples", type=int, default=2000, help="reference draws per person (--reference task)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    run = load_run(args.run)
    task, model, e = run.task, run.model, run.cfg.episodes
    if not model.has_joint:
        raise SystemExit(f"{args.run}: this network has no joint head (network.joint: none)")
    groups = {spec: group_indices(task, spec) for part in args.groups for spec in part.split(",")}
    batch = run.sample_people(args.people, tf.constant([args.seed, 0x101]))
    tmask = target_mask(task, "all", args.people, e.num_predictive_targets)
    truth = batch.theta.numpy().astype(np.float64)
    horizon = max(args.steps)
    methods = {"random": RandomAcquisition(), "policy": PolicyAcquisition(model)}
    print(f"{args.run}: {args.people} simulated people, seed {args.seed}, reference {args.reference}")
    passing = []
    header = (
        "| group | queries | t | joint | product | gain | corr_err | abs r_exact | rmse_marg | rmse_joint "
        "| rmse_exact |"
    )
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    for name, method in methods.items():
        result = run_acquisition(method, batch, tmask, horizon, [args.seed, 1])
        for t in args.steps:
            state = state_after(result.state, tf.constant(result.chosen), e.num_initial_context, tf.constant(t))
            out = model(model_inputs(state, batch, tmask), compute_policy=False)
            marginals = AlineModel.posterior(out)
            marg_logq = marginals.log_prob(tf.cast(truth, tf.float32)).numpy()
            marg_mean = marginals.mean().numpy()
            x, y, mask = state.context_x, state.context_y, state.context_mask
            ok = [
                psis_check(task, q, x, y, mask, seed=(args.seed, 7)).ok.mean()
                for q in (marginals, joint_posterior(out))
            ]
            passing.append(f"| {name} | {t} | {ok[0]:.1%} | {ok[1]:.1%} |")
            ref = reference_draws(
                task, state.context_x, state.context_y, state.context_mask, args.reference, args.samples, (args.seed, t)
            )
            for spec, idx in groups.items():
                q = AlineModel.joint_posterior(out, tuple(idx))
                joint = q.log_prob(tf.constant(truth[:, idx], tf.float32)).numpy()
                mean, cov = moments(q, (args.seed, 11))
                ref_s = ref[..., idx]
                ref_mean = ref_s.mean(0)
                centred = ref_s - ref_mean
                ref_cov = np.einsum("spi,spj->pij", centred, centred) / len(ref_s)
                pairs = list(itertools.combinations(range(len(idx)), 2))
                if pairs:
                    rq, rx = correlations(cov), correlations(ref_cov)
                    err = np.mean([np.abs(rq[:, i, j] - rx[:, i, j]) for i, j in pairs])
                    size = np.mean([np.abs(rx[:, i, j]) for i, j in pairs])
                else:
                    err = size = float("nan")

                def rmse(m, idx=idx):
                    return float(np.mean(np.sqrt(np.mean((m - truth[:, idx]) ** 2, -1))))

                product = marg_logq[:, idx].sum(-1)
                print(
                    f"| {spec} | {name} | {t} | {joint.mean():.3f} | {product.mean():.3f} | "
                    f"{(joint - product).mean():+.3f} | {err:.3f} | {size:.3f} | {rmse(marg_mean[:, idx]):.4f} | "
                    f"{rmse(mean):.4f} | {rmse(ref_mean):.4f} |"
                )
    print(f"\n| queries | t | k-hat <= {KHAT_MAX}, marginals | k-hat <= {KHAT_MAX}, joint |\n|---|---|---|---|")
    print("\n".join(passing))


if __name__ == "__main__":
    main()
