"""Structured logs: one JSON line per event, carrying the bound correlation and trace ids."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog
from structlog.typing import Processor


def configure(service: str, level: str = "INFO", json: bool = True) -> None:
    renderer = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer()
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        lambda _, __, event: {"service": service, **event},
    ]
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=never_failing(structlog.make_filtering_bound_logger(logging.getLevelName(level.upper()))),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library: render them the same way, on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared, processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer]))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("kafka", "aiokafka", "faust", "mode", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))


def never_failing(wrapper: type) -> type:
    """A bound-logger class whose calls never raise.

    Logging is a side line: a log line that cannot be written (stdout a closed pipe,
    BrokenPipeError; a full disk; a value a processor chokes on) is dropped, so that it
    can never fail, retry or skip the work it describes (a consumer's event above all).
    """

    class NeverFailing(wrapper):
        def _proxy_to_logger(self, method_name: str, event: str | None = None, **event_kw: Any) -> Any:
            try:
                return super()._proxy_to_logger(method_name, event, **event_kw)
            except Exception:  # noqa: BLE001 - see above
                return None

    NeverFailing.__name__ = NeverFailing.__qualname__ = f"NeverFailing{wrapper.__name__}"
    return NeverFailing


def get(name: str | None = None) -> Any:
    return structlog.get_logger(name)
