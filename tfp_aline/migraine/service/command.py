"""`tfp-aline serve`: load a run once and answer advice requests over HTTP until stopped."""

from __future__ import annotations

import importlib.util

from tfp_aline.errors import TfpAlineError

INSTALL_HINT = "tfp-aline serve needs the optional 'serve' extra (FastAPI, uvicorn): pip install 'tfp_aline[serve]'"


def check_serve_extra() -> None:
    """Fail with one line saying how to install the extra when FastAPI or uvicorn is missing."""
    for name in ("fastapi", "uvicorn", "threadpoolctl"):
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken install
            found = False
        if not found:
            raise TfpAlineError(INSTALL_HINT)


def limit_threads(threads: int) -> None:
    """At most `threads` threads for numpy's BLAS (threadpoolctl).

    A request is many small numpy operations: on this 2-core machine OpenBLAS's busy-waiting threads
    doubled the CPU each request costs (55 ms against 27 ms; TensorFlow's own thread counts made no
    difference, 27.1 against 27.3 ms, and are left alone: the amortized draws of the per-person check
    depend on them, so changing them would give the service other checks than `advise`)."""
    if threads < 1:
        raise TfpAlineError(f"--threads must be >= 1, got {threads}")
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)


def serve_command(
    run, *, host: str, port: int, max_days: int, max_body_bytes: int, threads: int = 1, log_level: str = "info"
) -> int:
    """Load `run`, then serve until SIGINT/SIGTERM (uvicorn finishes the requests in flight)."""
    check_serve_extra()
    if not 0 <= port <= 65535:
        raise TfpAlineError(f"--port must be 0-65535, got {port}")
    limit_threads(threads)
    import uvicorn

    from tfp_aline.migraine.service.advice_service import AdviceService
    from tfp_aline.migraine.service.app import create_app

    # Loaded before the port is bound: a bad run dir ends here with its one-line error.
    service = AdviceService(run, max_days=max_days, max_body_bytes=max_body_bytes)
    print(f"serving {run} on http://{host}:{port} (API schema: /docs, /openapi.json)", flush=True)
    uvicorn.run(create_app(service), host=host, port=port, log_level=log_level, access_log=False)
    return 0
