"""The task interface: what the network and the training loop need from a simulator."""
from __future__ import annotations

import abc
from typing import Mapping

from tfp_aline.episodes import EpisodeBatch
from tfp_aline.errors import ConfigError


class Task(abc.ABC):
    """A Bayesian model to run ALINE on: prior, design pool, likelihood, parameter groups.

    Subclasses set `name`, `x_dim`, `y_dim`, `outcome_type` ('binary' or 'continuous'),
    `parameter_names` and `parameter_groups`, and implement the abstract methods. Every
    sampling method takes a stateless seed (a shape-[2] int tensor) so that it is reproducible
    inside `tf.function` and XLA.
    """

    name: str
    x_dim: int
    y_dim: int = 1
    outcome_type: str = "binary"
    parameter_names: tuple[str, ...]
    parameter_groups: Mapping[str, tuple[int, ...]]

    @property
    def input_names(self) -> tuple[str, ...]:
        """Names of the Dx input columns (for plots and tables)."""
        return tuple(f"x{i}" for i in range(self.x_dim))

    @property
    def support(self):
        """The prior's box, (low [L], high [L]) numpy arrays, or None when theta is unbounded
        (used to clip posterior samples, as the paper's RMSE does, and to lay out grids)."""
        return None

    @property
    def num_parameters(self) -> int:
        return len(self.parameter_names)

    def parameter_indices(self, target=None) -> tuple[int, ...]:
        """Parameter indices for a target: None or 'all', a group name, a parameter name,
        or a sequence of indices/names."""
        if target is None or (isinstance(target, str) and target == "all"):
            return tuple(range(self.num_parameters))
        if isinstance(target, str):
            if target in self.parameter_groups:
                return tuple(self.parameter_groups[target])
            if target in self.parameter_names:
                return (self.parameter_names.index(target),)
            raise ConfigError(
                f"unknown target {target!r} for task {self.name!r}; expected 'all', a group "
                f"({', '.join(self.parameter_groups)}) or a parameter name")
        out = []
        for t in target:
            if isinstance(t, str):
                out.extend(self.parameter_indices(t))
            elif isinstance(t, int) and 0 <= t < self.num_parameters:
                out.append(int(t))
            else:
                raise ConfigError(f"parameter index {t!r} out of range 0..{self.num_parameters - 1}")
        if not out or len(set(out)) != len(out):
            raise ConfigError(f"target {target!r} must name distinct parameters")
        return tuple(out)

    @abc.abstractmethod
    def sample_episodes(self, batch_size: int, num_candidates: int, seed, num_initial_context: int = 0,
                        num_predictive_targets: int = 0) -> EpisodeBatch:
        """Draw B episodes: theta ~ p(theta), a pool of N candidates with their outcomes,
        N0 initial context points and M predictive targets, all for the same theta."""

    @abc.abstractmethod
    def simulate_outcomes(self, theta, x, seed):
        """y ~ p(y | x, theta); theta: [B, L], x: [B, n, Dx] -> y: [B, n, Dy]."""

    @abc.abstractmethod
    def log_posterior(self, theta, x, y, mask=None):
        """Unnormalised log p(theta | D) = log p(theta) + sum_i mask_i log p(y_i | x_i, theta).

        theta: [..., B, L] (leading dims, e.g. MCMC chains, broadcast), x: [B, n, Dx],
        y: [B, n, Dy], mask: [B, n] bool or None -> [..., B].
        """
