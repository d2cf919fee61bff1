"""Target masks: which parameter and predictive tokens form an episode's inference goal."""

import numpy as np
import tensorflow as tf

from tfp_aline.core.target_names import PREDICTIVE
from tfp_aline.errors import ConfigError

__all__ = ["PREDICTIVE", "target_mask"]


def _is_per_episode(target):
    # A list holding anything but ints is one spec per episode; a tuple is always one spec,
    # which is how to target the union of several named groups in every episode.
    return isinstance(target, list) and not all(isinstance(t, (int, np.integer)) for t in target)


def _row(task, target, num_predictive):
    """Bool numpy row [L + M] for one target spec."""
    num_parameters = task.num_parameters
    row = np.zeros(num_parameters + num_predictive, bool)
    if isinstance(target, str) and target == PREDICTIVE:
        if num_predictive == 0:
            raise ConfigError("target 'predictive' needs predictive targets (num_predictive > 0)")
        row[num_parameters:] = True
        return row
    if isinstance(target, (int, np.integer)):
        target = (int(target),)
    elif isinstance(target, (list, tuple, range, np.ndarray)):
        target = tuple(int(t) if isinstance(t, np.integer) else t for t in target)
    row[list(task.parameter_indices(target))] = True
    return row


def target_mask(task, target, batch_size, num_predictive):
    """Bool [B, L + M]: the active target tokens (L parameter tokens, then M predictive tokens).

    target: None or 'all' (every parameter), a group or parameter name, a tuple/list of parameter
    indices or a tuple of names/groups (their union), 'predictive' (the M predictive tokens), or a
    list of B such specs, one per episode. The result is a tensor, so a compiled model or rollout
    can switch target from call to call without retracing.
    """
    if _is_per_episode(target):
        if len(target) != batch_size:
            raise ConfigError(f"{len(target)} per-episode targets given for a batch of {batch_size}")
        rows = np.stack([_row(task, t, num_predictive) for t in target])
    else:
        rows = np.tile(_row(task, target, num_predictive)[None], [batch_size, 1])
    return tf.constant(rows, tf.bool)
