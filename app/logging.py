"""structlog configuration: one resource, JSON or console, stdlib logs through the same renderer."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterator, MutableMapping
from typing import Any

import structlog
from pydantic import SecretStr

from settings import LogFormat, LogSettings, mask_urls

__all__ = ["configure_logging", "logging_resource", "redact_secrets"]

SECRET_KEY = re.compile(r"pass(word)?|secret|token|api_key|authorization|dsn", re.IGNORECASE)
REDACTED = "***"


def redact_secrets(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Mask secret-looking keys, ``SecretStr`` values and passwords inside URLs (``mask_urls``)."""
    for key, value in event_dict.items():
        if SECRET_KEY.search(key) or isinstance(value, SecretStr):
            event_dict[key] = REDACTED
        elif isinstance(value, str):
            event_dict[key] = mask_urls(value)
    return event_dict


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog and the stdlib root logger once, per ``LOG__FORMAT``/``LOG__LEVEL``."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if settings.format is LogFormat.JSON:
        renderer = structlog.processors.JSONRenderer()
        # The traceback becomes text first, so that a URL in an error message is masked too.
        shared.append(structlog.processors.format_exc_info)
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=False)
    shared.append(redact_secrets)
    structlog.configure(
        # Drop below-level events first, before any processor spends time on them.
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers = [handler]
    _set_level(root, logging.getLevelNamesMapping()[settings.level])
    for chatty in ("pgserver", "aiormq", "aio_pika", "faiss.loader"):
        _set_level(logging.getLogger(chatty), max(logging.WARNING, root.level))
    # The transport logs every failed attempt with a traceback; the client raises the final
    # error, which the caller reports.
    _set_level(logging.getLogger("elastic_transport"), max(logging.ERROR, root.level))


def _set_level(logger: logging.Logger, level: int) -> None:
    # setLevel empties the level cache of every logger in the process, even for the same level.
    if logger.level != level:
        logger.setLevel(level)


def logging_resource(settings: LogSettings) -> Iterator[None]:
    """The ``logging`` Resource: configure at start; nothing to undo at stop."""
    configure_logging(settings)
    yield None
