"""The HTTP layer: FastAPI routes over an `AdviceService`, every refusal as a 4xx with one line."""

from __future__ import annotations

import asyncio
import json
import logging

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tfp_aline.errors import TfpAlineError
from tfp_aline.migraine.service.advice_service import AdviceService, RequestTooLarge
from tfp_aline.migraine.service.limits import BodyLimit
from tfp_aline.migraine.service.schema import AdviceRequest, AdviceResponse, ErrorResponse, Health

log = logging.getLogger("tfp_aline.migraine.service")

REFUSALS = {
    400: {"model": ErrorResponse, "description": "the body is not JSON"},
    413: {"model": ErrorResponse, "description": "the body or its number of days is above the service's limit"},
    422: {
        "model": ErrorResponse,
        "description": "a day, value, target or option the CLI would refuse; the message names the row and column",
    },
}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _where(loc) -> str:
    """('body', 'days', 3, 'Sleep duration (h)') -> "days[3]['Sleep duration (h)']"."""
    parts = list(loc[1:] if loc and loc[0] == "body" else loc)  # a column may be called 'body' too
    out = str(parts[0]) if parts else "body"
    for p in parts[1:]:
        out += f"[{p}]" if isinstance(p, int) else f"[{p!r}]"
    return out


def validation_message(errors) -> str:
    """pydantic's list of problems -> one line: the first problem, and how many more there are."""
    first = errors[0]
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'cannot be parsed')})"
    msg = f"{_where(first.get('loc', ()))}: {first.get('msg', 'invalid value')}"
    more = len(errors) - 1
    return msg + (f" (and {more} more problem{'s' * (more > 1)})" if more > 0 else "")


def create_app(service: AdviceService) -> FastAPI:
    """The ASGI application over a loaded service (routes, error handlers, the body-size limit)."""
    app = FastAPI(
        title="tfp_aline advice",
        description="Posterior of each migraine trigger, risk for unreported and coming days, and the next day "
        "to ask about, for one person's logged days. Same content as `tfp-aline advise --format json`.",
        version="1",
    )

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        errors = exc.errors()
        status = 400 if errors and errors[0].get("type") == "json_invalid" else 422
        return _error(status, validation_message(errors))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        # The framework's own refusals (unknown path, wrong method) in the same one-line shape.
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        # Only reached by a bug: answered as 500 with the exception's first line; the server keeps going.
        log.exception("unexpected error")
        first = (str(exc).splitlines() or [""])[0]
        return _error(500, f"internal error: {type(exc).__name__}: {first}")

    @app.get("/health", response_model=Health)
    def health():
        return service.health()

    # Checking the days and building the answer run on the event loop, one request after another
    # (Python work: threads would only contend for the GIL and stretch every request); the network
    # call runs on the batcher's thread, which releases the GIL while TensorFlow computes, and is
    # shared by all requests waiting at that moment.
    @app.post("/advice", response_model=AdviceResponse, responses=REFUSALS)
    async def advice(body: AdviceRequest):
        try:
            prepared = service.prepare(body.days, body.future, body.target, body.max_context)
            outputs = await asyncio.wrap_future(service.submit(prepared))
            result = service.finish(prepared, outputs)
        except RequestTooLarge as e:
            return _error(413, str(e))
        except TfpAlineError as e:
            return _error(422, str(e))
        # Returned as a ready Response: the content is already plain JSON, so FastAPI's second
        # validation against AdviceResponse (used for the schema) would only cost time.
        return Response(json.dumps(result, ensure_ascii=False), media_type="application/json")

    app.add_middleware(BodyLimit, max_bytes=service.max_body_bytes)
    return app
