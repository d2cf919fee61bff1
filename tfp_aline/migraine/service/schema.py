"""The request and response bodies of the advice service, as pydantic models (they make the OpenAPI schema)."""

from __future__ import annotations

import math
from typing import Annotated, Any, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, StrictInt, WithJsonSchema
from pydantic_core import PydanticCustomError


def _kind(value) -> str:
    return {dict: "an object", list: "a list"}.get(type(value), type(value).__name__)


def _cell(value):
    # One cell of a day, as the CSV would hold it: a number, text (a date, 'yes'), a boolean or null
    # (empty). What a cell may hold is for the history reader to judge, with the CLI's messages;
    # here only nested JSON is refused, which no CSV cell could be.
    if isinstance(value, float) and not math.isfinite(value):
        # Python's JSON reader lets NaN and Infinity through; a CSV cell 'nan' would be refused too.
        raise PydanticCustomError("cell_value", "expected a finite number, got {value}", {"value": str(value)})
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise PydanticCustomError(
        "cell_type", "expected a number, text, true/false or null, got {kind}", {"kind": _kind(value)}
    )


def _target(value):
    if isinstance(value, str) or (isinstance(value, list) and value and all(isinstance(v, str) for v in value)):
        return value
    raise PydanticCustomError(
        "target_type", "expected a name or a non-empty list of names, got {kind}", {"kind": _kind(value)}
    )


Cell = Annotated[Any, PlainValidator(_cell), WithJsonSchema({"type": ["number", "string", "boolean", "null"]})]
Day = dict[str, Cell]
Target = Annotated[
    Any,
    PlainValidator(_target),
    WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]}),
]

EXAMPLE_DAY = {"date": "2025-03-01", "Sleep duration (h)": 7.4, "Perceived stress (score)": 3.1, "migraine": 0}


class AdviceRequest(BaseModel):
    """A person's logged days (the rows of the history CSV, one object per day keyed by column header),
    optional coming days, and what the advice is for."""

    model_config = ConfigDict(extra="forbid")

    days: list[Day] = Field(
        description="one object per logged day: every feature of the run's table in raw units (the same "
        "headers the CSV takes), optional 'date', and 'migraine' = 1/0/true/false/'yes'/'no' or null "
        "(not reported yet). Messages number the days as CSV rows: days[0] is row 2.",
        examples=[[EXAMPLE_DAY]],
    )
    future: Optional[list[Day]] = Field(
        default=None, description="coming days (features only, 'migraine' absent or null) to predict"
    )
    target: Target = Field(
        default="all",
        description="'all', a category (e.g. 'sleep'), a parameter name, a list of these, or 'predictive'",
    )
    max_context: Optional[StrictInt] = Field(
        default=None, description="reported days given to the model, most recent first (default: the training capacity)"
    )


class Trigger(BaseModel):
    parameter: str
    category: str
    mean: float
    sd: float
    q05: float
    q95: float
    prior_mean: float
    prior_sd: float


class RiskDay(BaseModel):
    day: str
    kind: str = Field(description="'unreported' (a logged day without an outcome) or 'future'")
    row: int
    date: Optional[str]
    p_migraine: float


class Question(BaseModel):
    rank: int
    day: str
    row: int
    date: Optional[str]
    probability: float = Field(description="the policy's probability of asking about this day next")
    p_migraine: float


class Mixture(BaseModel):
    mixture_logits: list[list[float]]
    mixture_locs: list[list[float]]
    mixture_scales: list[list[float]]


class AdviceResponse(BaseModel):
    """The same content as `tfp-aline advise --format json`."""

    source: str
    target: Union[str, list[str]]
    capacity: int
    max_context: int
    used_days: int
    dropped_days: int
    warnings: list[str]
    triggers: list[Trigger]
    risk: list[RiskDay]
    next_questions: list[Question]
    posterior_mixture: Mixture


class ErrorResponse(BaseModel):
    error: str = Field(description="one line, as the CLI prints it after 'error: '")


class Health(BaseModel):
    status: str
    run: str
    model_sha256: str = Field(description="SHA-256 of the run's model.keras as loaded at start")
    loaded_at: str
    capacity: int
    features: list[str]
    parameters: list[str]
    max_days: int
    max_body_bytes: int
    forward_passes: int = Field(description="network calls since start (concurrent requests share one)")
    people_advised: int
