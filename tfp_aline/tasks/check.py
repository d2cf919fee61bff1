"""Checking a user's task before a long run: its TFP pieces called in small batches, one line per problem.

`check_task(task)` calls the task's own methods on a few people (B = `batch`) and a few designs
(N = `num_candidates`) and returns what is wrong, one self-contained line each (an empty list: the
task is fine). `raise_if_problems(task)` raises one `TaskCheckError` listing them. A failure inside
user code becomes a line naming the method and the exception's first line, never a traceback.

The checks follow what the rest of the package relies on (see `Task`'s docstring):
  - metadata: name, outcome kind, x_dim, y_dim, dtype, parameter names, groups, input names,
    support, Options and from_options;
  - prior: a distribution whose draws are [B, L], of the task's dtype, finite, reproducible from a
    stateless seed, inside the support, with a finite log_prob of shape [B];
  - designs: draws [B, N, Dx] of the task's dtype, finite, reproducible;
  - likelihood: one outcome per design ([B, N] draws and log_prob), finite, 0/1 when binary;
  - the methods built on them (some a task may override): simulate_outcomes, outcome_probs,
    log_likelihood (shape [B], with and without a mask; person i's value does not depend on the
    other people; leading dims of theta broadcast), log_posterior and its gradient (for the NUTS
    reference), sample_episodes, and all of it inside a `tf.function`, as training runs it.
A check whose inputs already failed is skipped, so that one mistake gives one line.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp

from tfp_aline.core.target_names import BUILTIN_TARGETS
from tfp_aline.errors import ConfigError
from tfp_aline.tasks.base import OUTCOMES, Task
from tfp_aline.tasks.names import first_line as _first_line

tfd = tfp.distributions

_FAILED = object()  # what `_Checker.call` returns when the user's code raised
# Two evaluations of the same log-likelihood (a batch against one person alone, say) may differ by
# float32 rounding in batched kernels; anything beyond this is a real dependence.
RTOL, ATOL = 1e-4, 1e-3


class TaskCheckError(ConfigError):
    """A task that fails `check_task`: the message lists every problem, one line each."""

    def __init__(self, task_label: str, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        s = "s" if len(self.problems) != 1 else ""
        super().__init__(f"task {task_label} has {len(self.problems)} problem{s}:\n{lines}")


def _shape(t) -> str:
    return str(list(np.shape(t)))


def _names(names, limit: int = 6) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


class _Checker:
    """Collects problem lines; `call` runs one piece of user code and turns its failure into a line."""

    def __init__(self):
        self.problems: list[str] = []

    def add(self, line: str) -> bool:
        self.problems.append(line)
        return False

    def call(self, label: str, fn, *args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # user code: anything it raises is the problem to report
            self.add(f"{label} raised {_first_line(e)}")
            return _FAILED

    def tensor(self, label: str, value, shape, dtype, *, why: str = "") -> bool:
        """`value` is a tensor of `shape` and `dtype` with finite entries; one line if not."""
        if value is _FAILED:
            return False
        if not isinstance(value, (tf.Tensor, np.ndarray)):
            return self.add(f"{label} returned {type(value).__name__}; expected a tensor of shape {list(shape)}")
        if list(np.shape(value)) != list(shape):
            return self.add(f"{label} has shape {_shape(value)}; expected {list(shape)}{why}")
        got = tf.as_dtype(value.dtype)
        if dtype is not None and got != dtype:
            return self.add(f"{label} has dtype {got.name}; expected {dtype.name} (the task's dtype)")
        if got.is_floating and not np.all(np.isfinite(np.asarray(value))):
            bad = int(np.sum(~np.isfinite(np.asarray(value))))
            return self.add(f"{label} has {bad} non-finite value(s) (NaN or inf) of {int(np.size(value))}")
        return True

    def distribution(self, label: str, value) -> bool:
        if value is _FAILED:
            return False
        if not isinstance(value, tfd.Distribution):
            return self.add(f"{label} returned {type(value).__name__}; expected a tfp.distributions.Distribution")
        return True


def check_task(
    task: Task, *, batch: int = 3, num_candidates: int = 5, seed: int = 0, rebuild: bool = True, graph: bool = True
) -> list[str]:
    """The problems of a task, one line each; [] when it passes.

    Args:
      task: a `Task` instance (e.g. `MyTask(MyTask.Options())`).
      batch: B, the number of people the methods are called on.
      num_candidates: N, the number of designs per person.
      seed: an integer; every draw comes from stateless seeds derived from it.
      rebuild: also build a task from the default options through `from_options` (a caller that
        just built `task` that way, as the registry does, can skip it).
      graph: also run `sample_episodes` and `log_posterior` inside a `tf.function`, as training
        does (catches `.numpy()` and Python control flow on tensors in user code); it costs a
        trace, most of the check's time.

    Returns:
      A list of strings, each naming the method, what it gave and what was expected.
    """
    c = _Checker()
    if not isinstance(task, Task):
        return [f"{type(task).__name__} is not a tfp_aline Task (subclass tfp_aline.tasks.base.Task)"]
    num_params, box = _check_metadata(c, task, rebuild)
    if num_params is not None:
        _check_model(c, task, num_params, box, batch, num_candidates, seed, graph)
    return c.problems


def raise_if_problems(task: Task, **kwargs) -> None:
    """`check_task(task, **kwargs)`, raising one `TaskCheckError` that lists the problems if any."""
    problems = check_task(task, **kwargs)
    if problems:
        cls = type(task)
        raise TaskCheckError(f"{getattr(task, 'name', '?')!r} ({cls.__module__}:{cls.__qualname__})", problems)


# ---- metadata: names, kinds and options, before any model call -------------------------------
def _check_metadata(c: _Checker, task: Task, rebuild: bool):
    """The class-level declarations: (L, the support box or None); L is None when the names,
    x_dim, outcome or dtype are too broken to check the model against."""
    name = getattr(task, "name", None)
    if not (isinstance(name, str) and name):
        c.add(f"name = {name!r}; expected a non-empty string (configs and runs show it)")
    outcome = getattr(task, "outcome", None)
    if outcome not in OUTCOMES:
        c.add(f"outcome = {outcome!r}; expected one of {', '.join(map(repr, OUTCOMES))}")
    x_dim = getattr(task, "x_dim", None)
    if isinstance(x_dim, bool) or not isinstance(x_dim, (int, np.integer)) or x_dim < 1:
        c.add(f"x_dim = {x_dim!r}; expected a positive integer (the number of inputs of one design)")
    if getattr(task, "y_dim", 1) != 1:
        c.add(f"y_dim = {task.y_dim!r}; expected 1 (one outcome per design: the derived methods give y [B, n, 1])")
    try:
        dtype_ok = tf.as_dtype(task.dtype).is_floating
    except TypeError:
        dtype_ok = False
    if not dtype_ok:
        c.add(f"dtype = {getattr(task, 'dtype', None)!r}; expected a TensorFlow floating dtype (tf.float32)")

    names = c.call("parameter_names", lambda: task.parameter_names)
    num_params = box = None
    if names is not _FAILED:
        if isinstance(names, str) or not all(isinstance(n, str) and n for n in names or ()):
            c.add(f"parameter_names = {names!r}; expected a tuple of non-empty strings, one per parameter")
        elif not names:
            c.add("parameter_names is empty; expected one name per parameter of the prior")
        elif len(set(names)) != len(names):
            dupes = sorted({n for n in names if list(names).count(n) > 1})
            c.add(f"parameter_names has duplicates ({', '.join(dupes)}); expected distinct names (targets name them)")
        else:
            num_params = len(names)
    if num_params is not None:
        _check_groups(c, task, tuple(names))
        box = _check_support(c, task, num_params)
    if isinstance(x_dim, (int, np.integer)) and x_dim >= 1:
        inputs = c.call("input_names", lambda: task.input_names)
        if inputs is not _FAILED and (isinstance(inputs, str) or len(inputs) != x_dim):
            c.add(f"input_names = {inputs!r}; expected {x_dim} names (x_dim = {x_dim})")
    _check_options(c, task, rebuild)
    if not (isinstance(x_dim, (int, np.integer)) and x_dim >= 1 and outcome in OUTCOMES and dtype_ok):
        return None, box
    return num_params, box


def _check_groups(c: _Checker, task: Task, names: tuple[str, ...]) -> None:
    groups = c.call("parameter_groups", lambda: task.parameter_groups)
    if groups is _FAILED:
        return
    if not isinstance(groups, Mapping):
        c.add(f"parameter_groups is a {type(groups).__name__}; expected a mapping of group name -> parameter indices")
        return
    valid = f"0..{len(names) - 1} ({_names(names)})"
    for group, indices in groups.items():
        label = f"parameter_groups[{group!r}]"
        if not isinstance(group, str) or not group:
            c.add(f"{label}: expected a non-empty string as the group's name")
        elif group in BUILTIN_TARGETS:
            c.add(f"{label}: the name of a built-in target; rename the group")
        elif group in names and tuple(indices) != (names.index(group),):
            c.add(f"{label} = {tuple(indices)!r}: a parameter of that name is {names.index(group)}; rename the group")
        try:
            indices = tuple(indices)
        except TypeError:
            c.add(f"{label} = {indices!r}; expected a tuple of parameter indices {valid}")
            continue
        unknown = [i for i in indices if isinstance(i, bool) or not isinstance(i, (int, np.integer))]
        unknown += [i for i in indices if i not in unknown and not 0 <= i < len(names)]
        if unknown:
            hint = " (indices, not names)" if any(isinstance(i, str) for i in unknown) else ""
            c.add(f"{label} = {indices!r} refers to unknown parameter(s) {unknown!r}; expected indices {valid}{hint}")
        elif not indices or len(set(indices)) != len(indices):
            c.add(f"{label} = {indices!r}; expected distinct parameter indices, at least one")


def _check_support(c: _Checker, task: Task, num_params: int):
    """The declared box as (low [L], high [L]) float64 arrays, or None (none declared, or broken)."""
    support = c.call("support", lambda: task.support)
    if support is _FAILED or support is None:
        return None
    try:
        low, high = (np.asarray(b, np.float64) for b in support)
    except (TypeError, ValueError):
        c.add(f"support = {support!r}; expected None or (low [L], high [L])")
        return None
    if low.shape != (num_params,) or high.shape != (num_params,):
        c.add(f"support has shapes {list(low.shape)} and {list(high.shape)}; expected [{num_params}] each (low, high)")
        return None
    if not np.all(low < high):  # NaN bounds fail this too
        bad = [task.parameter_names[i] for i in np.flatnonzero(~(low < high))]
        c.add(f"support: low < high fails for {_names(bad)}; expected each parameter's bounds in order")
        return None
    return low, high


def _check_options(c: _Checker, task: Task, rebuild: bool) -> None:
    cls = type(task)
    if not dataclasses.is_dataclass(cls.Options):
        c.add(f"{cls.__name__}.Options is not a dataclass; expected a (frozen) dataclass of the task's config keys")
        return
    options = c.call(f"{cls.__name__}.Options()", cls.Options)
    if options is _FAILED or not rebuild:
        return
    built = c.call(f"{cls.__name__}.from_options(Options())", cls.from_options, options)
    if built is _FAILED:
        return
    if not isinstance(built, cls):
        c.add(f"{cls.__name__}.from_options(Options()) returned {type(built).__name__}; expected a {cls.__name__}")
        return
    if cls.group_names is not Task.group_names:  # a cheaper answer of its own: it must agree
        groups = c.call(f"{cls.__name__}.group_names(Options())", cls.group_names, options)
        if groups is not _FAILED and set(groups) != set(built.parameter_groups):
            c.add(
                f"{cls.__name__}.group_names(Options()) = {tuple(groups)!r}; expected the built task's "
                f"parameter_groups {tuple(built.parameter_groups)!r}"
            )


# ---- the model: its TFP pieces called on B people and N designs -------------------------------
def _check_model(c: _Checker, task: Task, num_params: int, box, batch: int, n: int, seed: int, graph: bool) -> None:
    dtype = tf.as_dtype(task.dtype)
    s_prior, s_designs, s_outcomes, s_episodes = tf.unstack(
        tf.random.experimental.stateless_split(tf.constant([seed, 0], tf.int32), 4)
    )
    names = task.parameter_names
    b, L, dx = batch, num_params, int(task.x_dim)
    theta = _check_prior(c, task, b, L, dtype, s_prior)
    x = _check_designs(c, task, b, n, dx, dtype, s_designs)
    if theta is None or x is None:
        return
    if box is not None:
        (low, high), t = box, theta.numpy()
        outside = [names[i] for i in range(L) if np.any((t[:, i] < low[i]) | (t[:, i] > high[i]))]
        if outside:
            c.add(f"prior().sample({b}) has draws outside support for {_names(outside)}; expected low <= theta <= high")
    y = _check_likelihood(c, task, theta, x, b, n, s_outcomes)
    if y is None:
        return
    if _check_log_likelihood(c, task, theta, x, y, b, n):
        _check_log_posterior(c, task, theta, x, y, b)
        if graph:
            _check_episodes(c, task, b, n, L, dx, dtype, s_episodes)


def _check_prior(c: _Checker, task, b, L, dtype, seed):
    """Prior draws [B, L] (None when the prior is broken)."""
    prior = c.call("prior()", task.prior)
    if not c.distribution("prior()", prior):
        return None
    label = f"prior().sample({b})"
    theta = c.call(label, prior.sample, b, seed=seed)
    why = f" ({L} parameters: {_names(task.parameter_names)})"
    if not c.tensor(label, theta, [b, L], dtype, why=why):
        return None
    # A second distribution object, as each call site builds its own: draws made when the
    # distribution is built (tf.random.uniform in prior()) would differ here.
    again = c.call(label, lambda: task.prior().sample(b, seed=seed))
    if again is not _FAILED and not np.array_equal(theta.numpy(), np.asarray(again)):
        c.add(f"{label} gives different draws for the same seed; expected stateless sampling (pass `seed` on to TFP)")
    label = f"prior().log_prob(theta [{b}, {L}])"
    lp = c.call(label, prior.log_prob, theta)
    batch_hint = " (per-parameter distributions go in tfd.Independent(..., 1) or a joint one)"
    if not c.tensor(label, lp, [b], None, why=batch_hint):
        return None
    return theta


def _check_designs(c: _Checker, task, b, n, dx, dtype, seed):
    """Candidate designs [B, N, Dx] (None when the design distribution is broken)."""
    designs = c.call(f"design_distribution({n})", task.design_distribution, n)
    if not c.distribution(f"design_distribution({n})", designs):
        return None
    label = f"design_distribution({n}).sample({b})"
    x = c.call(label, designs.sample, b, seed=seed)
    if not c.tensor(label, x, [b, n, dx], dtype, why=f" (B people, N = {n} designs, x_dim = {dx})"):
        return None
    again = c.call(label, lambda: task.design_distribution(n).sample(b, seed=seed))
    if again is not _FAILED and not np.array_equal(x.numpy(), np.asarray(again)):
        c.add(f"{label} gives different draws for the same seed; expected stateless sampling (pass `seed` on to TFP)")
    return x


def _check_likelihood(c: _Checker, task, theta, x, b, n, seed):
    """Outcomes y [B, N, 1] from `simulate_outcomes` (None when the likelihood is broken)."""
    what = f"likelihood(theta {_shape(theta)}, x {_shape(x)})"
    lik = c.call(what, task.likelihood, theta, x)
    if not c.distribution(what, lik):
        return None
    raw = c.call(f"{what}.sample()", lik.sample, seed=seed)
    if not c.tensor(f"{what}.sample()", raw, [b, n], None, why=" (one outcome per design)"):
        return None
    values = np.asarray(tf.cast(raw, tf.float64))
    if not np.all(np.isfinite(values)):
        c.add(f"{what}.sample() has non-finite outcomes")
        return None
    is_01 = np.isin(values, (0.0, 1.0))
    if task.outcome == "binary" and not is_01.all():
        other = sorted(set(values[~is_01].ravel().tolist()))[:4]
        c.add(f"{what}.sample() has values {other} for a binary outcome; expected only 0 and 1")
        return None
    if task.outcome == "continuous" and is_01.all() and values.size > 1:
        c.add(f"{what}.sample() gives only 0 and 1 for a continuous outcome; expected outcome = 'binary'")
        return None
    label = f"{what}.log_prob(y)"
    lp = c.call(label, lik.log_prob, tf.cast(raw, lik.dtype))
    if not c.tensor(label, lp, [b, n], None, why=" (one value per design: do not wrap it in tfd.Independent)"):
        return None
    y = c.call("simulate_outcomes(theta, x)", task.simulate_outcomes, theta, x, seed)
    if not c.tensor("simulate_outcomes(theta, x)", y, [b, n, 1], tf.as_dtype(task.dtype)):
        return None
    if task.outcome == "binary":
        probs = c.call("outcome_probs(theta, x)", task.outcome_probs, theta, x)
        if c.tensor("outcome_probs(theta, x)", probs, [b, n], None):
            p = np.asarray(probs)
            if not np.all((p >= 0) & (p <= 1)):
                c.add(f"outcome_probs(theta, x) has values in [{p.min():.3g}, {p.max():.3g}]; expected probabilities")
    return y


def _check_log_likelihood(c: _Checker, task, theta, x, y, b, n) -> bool:
    """Shape [B], finite, with a mask, per person, and with leading dims of theta; True when sound."""
    args = f"theta {_shape(theta)}, x {_shape(x)}, y {_shape(y)}"
    ll = c.call(f"log_likelihood({args})", task.log_likelihood, theta, x, y)
    if not c.tensor(f"log_likelihood({args})", ll, [b], None, why=" (one value per person: summed over designs)"):
        return False
    ll = np.asarray(ll)
    mask = tf.constant(np.arange(n)[None, :].repeat(b, 0) < (n + 1) // 2)  # the first half of each pool
    masked = c.call(f"log_likelihood({args}, mask)", task.log_likelihood, theta, x, y, mask)
    if not c.tensor(f"log_likelihood({args}, mask [{b}, {n}])", masked, [b], None):
        return False
    alone = []
    for i in range(b):
        one = c.call(
            f"log_likelihood of person {i} alone", task.log_likelihood, theta[i : i + 1], x[i : i + 1], y[i : i + 1]
        )
        if not c.tensor(f"log_likelihood(theta [1, {theta.shape[1]}], ...) of person {i}", one, [1], None):
            return False
        alone.append(np.asarray(one)[0])
    if not np.allclose(ll, alone, rtol=RTOL, atol=ATOL):
        i = int(np.argmax(np.abs(ll - np.asarray(alone))))
        return c.add(
            f"log_likelihood of person {i} is {ll[i]:.6g} in a batch of {b} but {alone[i]:.6g} alone; expected "
            "each person's value to depend only on their own theta, x and y (reduce over designs, not people)"
        )
    # Leading dims of theta broadcast against x: NUTS chains, prior starts and the sPCE contrasts
    # pass theta [C, B, L] with x [B, n, Dx]. Row 1 pairs each person with another person's theta.
    swapped = tf.reverse(theta, [0])
    stacked = tf.stack([theta, swapped])
    label = f"log_likelihood(theta {_shape(stacked)}, x {_shape(x)}, y {_shape(y)})"
    both = c.call(label, task.log_likelihood, stacked, x, y)
    if not c.tensor(label, both, [2, b], None, why=" (leading dims of theta broadcast, as NUTS chains use them)"):
        return False
    other = c.call(f"log_likelihood(theta {_shape(theta)} reversed, ...)", task.log_likelihood, swapped, x, y)
    if other is _FAILED:
        return False
    if not np.allclose(np.asarray(both), np.stack([ll, np.asarray(other)]), rtol=RTOL, atol=ATOL):
        return c.add(f"{label} differs from the same call with theta [{b}, ...] one row at a time; expected them equal")
    return True


def _check_log_posterior(c: _Checker, task, theta, x, y, b) -> None:
    label = f"log_posterior(theta {_shape(theta)}, x {_shape(x)}, y {_shape(y)})"
    theta = tf.identity(theta)
    with tf.GradientTape() as tape:
        tape.watch(theta)
        lp = c.call(label, task.log_posterior, theta, x, y)
    if not c.tensor(label, lp, [b], None):
        return
    if type(task).reference_samples is not Task.reference_samples:
        return  # the task has its own reference posterior: NUTS, and so the gradient, is not used
    grad = c.call(f"the gradient of {label}", tape.gradient, lp, theta)
    if grad is None:
        c.add(f"{label} has no gradient with respect to theta; expected one (the NUTS reference needs it)")
    elif grad is not _FAILED and not np.all(np.isfinite(np.asarray(grad))):
        c.add(f"the gradient of {label} is not finite at prior draws; expected finite (the NUTS reference needs it)")


def _check_episodes(c: _Checker, task, b, n, L, dx, dtype, seed) -> None:
    """`sample_episodes` and `log_posterior` of its draws inside a `tf.function`, as training runs them."""
    m = 1 if task.outcome == "binary" else 0
    label = f"sample_episodes({b}, {n}, num_initial_context=1, num_predictive_targets={m})"

    # A fresh tf.function per check: it traces once, and no cache keeps the user's task alive.
    @tf.function
    def episodes(s):
        e = task.sample_episodes(b, n, s, num_initial_context=1, num_predictive_targets=m)
        return e, task.log_posterior(e.theta, e.query_x, e.query_y)

    where = " inside a tf.function (as training runs it)"
    out = c.call(f"{label} with log_posterior{where}", episodes, seed)
    if out is _FAILED:
        return
    ep, lp = out
    want = dict(theta=[b, L], context_x=[b, 1, dx], context_y=[b, 1, 1], query_x=[b, n, dx], query_y=[b, n, 1])
    for field, shape in want.items():
        if not c.tensor(f"{label}.{field}{where}", getattr(ep, field, None), shape, dtype):
            return
    c.tensor(f"log_posterior of {label}{where}", lp, [b], None)
