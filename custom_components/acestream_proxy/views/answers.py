"""What every view answers when it cannot serve: a status and a plain message."""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Final

from aiohttp import web

from ..hub import RETRY_AFTER_LIMIT, CapacityError, NoEngineError
from ..stream.broadcast import ViewerLimitError
from ..stream.engine import (
    ContentKind,
    ContentRef,
    EngineApiError,
    EngineConnectionError,
    EngineError,
    EngineTimeoutError,
)

# What refuses a viewer: the hub, the broadcast and the engine.
JOIN_ERRORS: Final = (NoEngineError, CapacityError, ViewerLimitError, EngineError)

_STATUS_FOR: Final[tuple[tuple[type[Exception], HTTPStatus], ...]] = (
    (NoEngineError, HTTPStatus.NOT_FOUND),
    (CapacityError, HTTPStatus.SERVICE_UNAVAILABLE),
    (ViewerLimitError, HTTPStatus.SERVICE_UNAVAILABLE),
    (EngineTimeoutError, HTTPStatus.GATEWAY_TIMEOUT),
    (EngineConnectionError, HTTPStatus.SERVICE_UNAVAILABLE),
    (EngineApiError, HTTPStatus.BAD_GATEWAY),
    (EngineError, HTTPStatus.BAD_GATEWAY),
)


def error(
    status: HTTPStatus, message: str, retry_after: int | None = None
) -> web.Response:
    """A plain-text error (and when to retry, for a 503)."""
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=status, text=f"{message}\n", content_type="text/plain", headers=headers
    )


def error_for(err: Exception) -> web.Response:
    """Map why a viewer could not join to an HTTP answer."""
    status = next(status for kind, status in _STATUS_FOR if isinstance(err, kind))
    message = str(err)
    if isinstance(err, EngineApiError) and not isinstance(err, EngineTimeoutError):
        message = f"the engine answered: {message}"
    retry_after = None
    if status is HTTPStatus.SERVICE_UNAVAILABLE:
        retry_after = getattr(err, "retry_after", RETRY_AFTER_LIMIT)
    return error(status, message, retry_after)


def no_engine() -> web.Response:
    """What a GET would answer before any engine is loaded."""
    return error(HTTPStatus.NOT_FOUND, "no AceStream engine is configured and loaded")


def content_of(path: Mapping[str, str]) -> ContentRef | web.Response:
    """The broadcast a path names (``{content_id}`` or ``{infohash}``), or a 400."""
    kind = (
        ContentKind.INFOHASH if ContentKind.INFOHASH in path else ContentKind.CONTENT_ID
    )
    try:
        return ContentRef.parse(kind, path[kind])
    except ValueError as err:
        return error(HTTPStatus.BAD_REQUEST, str(err))
