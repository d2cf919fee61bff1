"""One rule for a YAML value against a dataclass field's annotation: config sections and task options alike."""

from __future__ import annotations

import math
import re

from tfp_aline.errors import ConfigError

# A float as a person writes it: `1e-3`, `5E4`, `1.5e3`, `.5e-2`, `1_000.5` (YAML 1.1 needs a dot
# and a signed exponent, so PyYAML alone reads `1e-3` as a string).
FLOAT = re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)?$")

_TYPES = {
    "int": ((int,), "an integer"),
    "float": ((float, int), "a number"),
    "bool": ((bool,), "true or false"),
    "str": ((str,), "a string"),
    "tuple": ((list, tuple), "a list"),
    "tuple[str, ...]": ((list, tuple), "a list of names"),
}
_OPTIONAL_PREFIXES = ("typing.Optional[", "Optional[")


def _annotation_text(annotation) -> str:
    """A field's annotation as text: a string already (deferred annotations), or a type's name."""
    if isinstance(annotation, str):
        return annotation.strip()
    return annotation.__name__ if isinstance(annotation, type) else str(annotation)


def _base_and_optional(annotation) -> tuple[str, bool]:
    """'typing.Optional[str]', 'Optional[str]', 'str | None', 'None | str' -> ('str', True)."""
    text = _annotation_text(annotation)
    for prefix in _OPTIONAL_PREFIXES:
        if text.startswith(prefix) and text.endswith("]"):
            return text[len(prefix) : -1].strip(), True
    parts = [p.strip() for p in text.split("|")]
    if len(parts) == 2 and "None" in parts:
        return next(p for p in parts if p != "None"), True
    return text, False


def coerce(key: str, value, annotation):
    """`value` checked (and converted where a person would expect it) against `annotation`.

    int: an integral float counts (`1e3`, `3000.0`); float: an int or a quoted number (`'1e-3'`),
    finite; bool and str: exactly that; tuple: a list of integers; tuple[str, ...]: a list of
    strings; Optional[X] / X | None: also null. An annotation outside these passes the value
    through (a task's own types). A mismatch raises ConfigError "KEY: expected ..., got VALUE".
    """
    base, optional = _base_and_optional(annotation)
    if value is None and optional:
        return None
    if base not in _TYPES:
        return value
    allowed, description = _TYPES[base]
    if optional:
        description += " or null"
    if base == "float" and isinstance(value, str) and FLOAT.match(value.strip()):
        value = float(value.strip().replace("_", ""))
    if base == "int" and isinstance(value, float) and value.is_integer():
        value = int(value)
    if (isinstance(value, bool) and bool not in allowed) or not isinstance(value, allowed):
        raise ConfigError(f"{key}: expected {description}, got {value!r}")
    if base == "float" and not math.isfinite(value):  # .inf passes every `> 0` check
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if base == "tuple":
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            raise ConfigError(f"{key}: expected a list of integers, got {value!r}")
        return tuple(value)
    if base == "tuple[str, ...]":
        if not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{key}: expected a list of names, got {value!r}")
        return tuple(value)
    return float(value) if base == "float" else value
