"""Logging: structlog to stderr, JSON for machines (the default off a terminal) or console for people."""

from __future__ import annotations

import logging
import sys

import structlog

from syncd.redact import redact_event


def setup_logging(log_format: str | None, verbose: bool, quiet: bool = False) -> None:
    """Configure structlog (and the stdlib loggers of our libraries); ``quiet`` keeps warnings only."""
    fmt = log_format or ("console" if sys.stderr.isatty() else "json")
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer() if fmt == "json" else structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if fmt == "json" else structlog.dev.set_exc_info,
            redact_event,  # last before rendering: tracebacks and upstream texts included
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=False,
    )
    # httpx logs each request at INFO; that is -v detail. Its lines carry URLs, never headers.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(name)s %(levelname)s %(message)s")
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.INFO if verbose else logging.WARNING)
    for name in ("botocore", "boto3", "s3transfer", "urllib3", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
