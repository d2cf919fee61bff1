"""The advice service: a trained migraine run behind an HTTP JSON API (`tfp-aline serve`, extra `serve`)."""

# Request limits, shared by the service and the `serve` command's defaults (importing this is cheap).
DEFAULT_MAX_DAYS = 500
DEFAULT_MAX_BODY_BYTES = 1_000_000
