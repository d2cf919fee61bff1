"""What a target may be called: 'all', 'predictive', a parameter group or a single parameter.

The one check behind a config's `targets:`, `evaluate --targets`, `advise --target` and
`Task.parameter_indices`; no TensorFlow, so reading a config stays light.
"""

from __future__ import annotations

from typing import Iterable

from tfp_aline.errors import ConfigError

ALL = "all"
PREDICTIVE = "predictive"
BUILTIN_TARGETS = (ALL, PREDICTIVE)


def check_target_name(name, groups: Iterable[str], parameters: Iterable[str], where: str = "") -> str:
    """`name` if it is a built-in target, one of `groups` or one of `parameters`; else ConfigError
    "WHEREunknown target 'x'; expected ..." naming every choice."""
    groups, parameters = tuple(groups), tuple(parameters)
    if name in BUILTIN_TARGETS or name in groups or name in parameters:
        return name
    raise ConfigError(
        f"{where}unknown target {name!r}; expected {ALL}, {PREDICTIVE}, a parameter group "
        f"({', '.join(groups) or 'none'}) or a parameter ({', '.join(parameters)})"
    )


def builtin_clash(groups: Iterable[str], parameters: Iterable[str]) -> str | None:
    """ "parameter group 'all'" or "parameter 'all'": one named like a built-in target (which would
    silently win over it), or None."""
    named = [("parameter group", g) for g in groups] + [("parameter", p) for p in parameters]
    return next((f"{kind} {name!r}" for kind, name in named if name in BUILTIN_TARGETS), None)
