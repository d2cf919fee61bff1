"""Requests to check a running advice service with: valid 30-day histories, and one bad request of every
class the service must refuse (each class the history reader rejects, wrong JSON types, oversized bodies).

Plain data (no TensorFlow, no HTTP client), shared by the tests and `benchmarks/serve_load.py`.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
from pathlib import Path

EXAMPLE_PERSON = Path(__file__).resolve().parents[1] / "data" / "example_person.csv"  # shipped with the package


def read_days(path=EXAMPLE_PERSON) -> list[dict]:
    """The rows of a history CSV as the JSON day objects the service takes (empty cells -> null)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    return [{k: (None if v.strip() == "" else _number_or_text(v)) for k, v in row.items()} for row in rows]


def _number_or_text(text: str):
    try:
        x = float(text)
    except ValueError:
        return text
    return int(x) if x.is_integer() and "." not in text else x


def histories(days: list[dict], length: int = 30) -> list[list[dict]]:
    """Every window of `length` consecutive days (the example person has 60 days: 31 windows)."""
    if len(days) < length:
        raise ValueError(f"{len(days)} days, fewer than the window of {length}")
    return [days[i : i + length] for i in range(len(days) - length + 1)]


@dataclasses.dataclass(frozen=True)
class BadRequest:
    """One malformed request: its class, the raw body, the content type, the status expected and a piece of
    the message that must be in the answer."""

    name: str
    body: bytes
    status: int
    expect: str
    content_type: str = "application/json"


def _json(payload) -> bytes:
    return json.dumps(payload, allow_nan=True).encode()


def _set(days, i, key, value):
    out = [dict(d) for d in days]
    out[i][key] = value
    return out


def bad_requests(days: list[dict], *, max_days: int, max_body_bytes: int) -> list[BadRequest]:
    """One request per class of bad input, built from a valid history `days` (which needs dates, a
    'migraine' column and a 'Sleep duration (h)' feature, as the example person has)."""
    feature = "Sleep duration (h)"
    first = days[0]
    no_date = [{k: v for k, v in d.items() if k != "date"} for d in days]
    b = []

    def add(name, payload, status, expect, **kw):
        b.append(BadRequest(name, payload if isinstance(payload, bytes) else _json(payload), status, expect, **kw))

    # What the history reader refuses (the CLI's messages, row = CSV row: days[1] is row 3).
    add("text for a number", {"days": _set(days, 1, feature, "seven")}, 422, "row 3, column 'Sleep duration (h)'")
    add("empty feature value", {"days": _set(days, 1, feature, None)}, 422, "empty value for 'Sleep duration (h)'")
    add("boolean for a number", {"days": _set(days, 2, feature, True)}, 422, "expected a number")
    add("missing feature column", {"days": [{k: v for k, v in d.items() if k != feature} for d in days]}, 422,
        "missing feature column(s): 'Sleep duration (h)'")  # fmt: skip
    add("unknown column", {"days": _set(days, 0, "Sleep duratoin", 7)}, 422, "unknown column 'Sleep duratoin'")
    add("bad migraine value", {"days": _set(days, 3, "migraine", "maybe")}, 422, "expected 1 (migraine), 0 (none)")
    add("no migraine column", {"days": [{k: v for k, v in d.items() if k != "migraine"} for d in days]}, 422,
        "missing column 'migraine'")  # fmt: skip
    add("bad date", {"days": _set(days, 4, "date", "yesterday")}, 422, "expected a date like 2025-03-01")
    add("duplicate date", {"days": _set(days, 5, "date", first["date"])}, 422, "appears twice")
    add("ambiguous date", {"days": _set(no_date, 0, "date", "03/04/2025")[:1]}, 422, "could be day/month/year")
    add("two-digit year", {"days": [dict(d, date=f"{13 + i}/03/25") for i, d in enumerate(no_date[:5])]}, 422,
        "two-digit year")  # fmt: skip
    add("value beyond float32", {"days": _set(days, 1, feature, 1e39)}, 422, "too large to compute with")
    add("implausible value", {"days": _set(days, 1, feature, 1e9)}, 422, "implausible")
    add("not finite", _json({"days": _set(days, 1, feature, math.nan)}), 422, "expected a finite number, got nan")
    add("no days", {"days": []}, 422, "days: no days given")
    add("only blank days", {"days": [{k: None for k in first}]}, 422, "no days below the header")
    add("future day with an outcome", {"days": days, "future": [dict(no_date[0], migraine=1)]}, 422,
        "coming days cannot have a reported outcome")  # fmt: skip
    add("unknown target", {"days": days, "target": "sleeep"}, 422, "unknown target 'sleeep'")
    add("predictive without days to predict", {"days": [dict(d, migraine=0) for d in days], "target": "predictive"},
        422, "needs unreported days or future days")  # fmt: skip
    add("negative max_context", {"days": days, "max_context": -1}, 422, "max_context must be >= 0")
    # Wrong JSON types and shapes (the framework's validation, answered in one line).
    add("cell is a list", {"days": _set(days, 0, feature, [7.5])}, 422, "days[0]['Sleep duration (h)']: expected")
    add("cell is an object", {"days": _set(days, 0, feature, {"h": 7})}, 422, "got an object")
    add("days not a list", {"days": {"a": 1}}, 422, "days: ")
    add("day not an object", {"days": [1, 2]}, 422, "days[0]: ")
    add("days missing", {"history": days}, 422, "days: ")
    add("target a number", {"days": days, "target": 3}, 422, "target: expected a name")
    add("max_context text", {"days": days, "max_context": "10"}, 422, "max_context: ")
    add("body not an object", [1, 2, 3], 422, "")
    add("invalid JSON", b'{"days": [', 400, "not valid JSON")
    add("not UTF-8", b'{"days": "\xff\xfe"}', 400, "")
    add("CSV sent as text", b"date,migraine\n2025-03-01,1\n", 422, "", content_type="text/csv")
    # Size limits.
    add("too many days", {"days": [dict(no_date[0]) for _ in range(max_days + 1)]}, 413, f"at most {max_days}")
    filler = "x" * (max_body_bytes + 1)
    add("huge body", {"days": days, "padding": filler}, 413, f"larger than {max_body_bytes} bytes")
    add("huge cell", {"days": _set(days, 0, feature, filler)}, 413, "larger than")
    return b


# The PSIS check resamples the posterior and fits a tail: round-off of 1e-6 in the network's outputs
# (a padded batch runs other kernels) moves its numbers by about 1e-4, its one-line message by a digit.
CHECK_TOL = 1e-2


def advice_equal(a: dict, b: dict, tol: float = 1e-6) -> bool:
    """Two advice answers equal up to `tol`, their PSIS checks up to `CHECK_TOL` (message aside)."""
    rest = lambda d: {k: v for k, v in d.items() if k != "check"}  # noqa: E731
    checks = [{k: v for k, v in (d.get("check") or {}).items() if k != "message"} for d in (a, b)]
    return approx_equal(rest(a), rest(b), tol) and approx_equal(*checks, max(tol, CHECK_TOL))


def approx_equal(a, b, tol: float = 1e-6) -> bool:
    """Two JSON values equal up to `tol` in every number (for advice computed in different processes)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(approx_equal(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(approx_equal(x, y, tol) for x, y in zip(a, b))
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b, abs_tol=tol)
    return a == b
