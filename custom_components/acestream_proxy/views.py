"""HTTP views: the MPEG-TS stream of a broadcast, shared by every viewer."""

from __future__ import annotations

from http import HTTPStatus
from typing import Final

from aiohttp import web
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .broadcaster import EndReason, ViewerLimitError
from .const import LOGGER, URL_PREFIX
from .engine import (
    ContentKind,
    ContentRef,
    EngineApiError,
    EngineConnectionError,
    EngineError,
    EngineTimeoutError,
)
from .hub import RETRY_AFTER_LIMIT, CapacityError, NoEngineError, get_hub

TS_HEADERS: Final = {
    "Content-Type": "video/mp2t",
    "Cache-Control": "no-store",
    # Tell reverse proxies (nginx) not to buffer a live stream.
    "X-Accel-Buffering": "no",
}


def async_register_views(hass: HomeAssistant) -> None:
    """Register the views once (views cannot be unregistered)."""
    hass.http.register_view(ContentIdStreamView())
    hass.http.register_view(InfohashStreamView())


def _error(
    status: HTTPStatus, message: str, retry_after: int | None = None
) -> web.Response:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.Response(
        status=status, text=f"{message}\n", content_type="text/plain", headers=headers
    )


_STATUS_FOR: Final[tuple[tuple[type[Exception], HTTPStatus], ...]] = (
    (NoEngineError, HTTPStatus.NOT_FOUND),
    (CapacityError, HTTPStatus.SERVICE_UNAVAILABLE),
    (ViewerLimitError, HTTPStatus.SERVICE_UNAVAILABLE),
    (EngineTimeoutError, HTTPStatus.GATEWAY_TIMEOUT),
    (EngineConnectionError, HTTPStatus.SERVICE_UNAVAILABLE),
    (EngineApiError, HTTPStatus.BAD_GATEWAY),
    (EngineError, HTTPStatus.BAD_GATEWAY),
)


def _error_for(err: Exception) -> web.Response:
    """Map why a viewer could not join to an HTTP answer."""
    status = next(status for kind, status in _STATUS_FOR if isinstance(err, kind))
    message = str(err)
    if isinstance(err, EngineApiError) and not isinstance(err, EngineTimeoutError):
        message = f"the engine answered: {message}"
    retry_after = None
    if status is HTTPStatus.SERVICE_UNAVAILABLE:
        retry_after = getattr(err, "retry_after", RETRY_AFTER_LIMIT)
    return _error(status, message, retry_after)


def _parse(kind: ContentKind, value: str) -> ContentRef | web.Response:
    try:
        return ContentRef.parse(kind, value)
    except ValueError as err:
        return _error(HTTPStatus.BAD_REQUEST, str(err))


async def _serve(
    request: web.Request, kind: ContentKind, value: str
) -> web.StreamResponse:
    ref = _parse(kind, value)
    if isinstance(ref, web.Response):
        return ref
    hub = get_hub(request.app[KEY_HASS])
    try:
        viewer = await hub.async_open_viewer(ref)
    except (NoEngineError, CapacityError, ViewerLimitError, EngineError) as err:
        return _error_for(err)

    response = web.StreamResponse(headers=TS_HEADERS)
    try:
        await response.prepare(request)
        reason = await viewer.stream(response.write)
        if reason is EndReason.DROPPED and request.transport is not None:
            # The client stopped reading: do not wait for it to take the rest.
            request.transport.abort()
            return response
        await response.write_eof()
    except ConnectionResetError:
        LOGGER.debug("Viewer of %s disconnected", viewer.broadcast.name)
    finally:
        viewer.leave()
    return response


def _head(request: web.Request, kind: ContentKind, value: str) -> web.StreamResponse:
    """Answer what a GET would serve, without opening an engine session."""
    ref = _parse(kind, value)
    if isinstance(ref, web.Response):
        return ref
    if not get_hub(request.app[KEY_HASS]).engines:
        return _error(
            HTTPStatus.NOT_FOUND, "no AceStream engine is configured and loaded"
        )
    return web.Response(headers=TS_HEADERS)


class ContentIdStreamView(HomeAssistantView):
    """``/api/acestream_proxy/stream/{content_id}``."""

    url = f"{URL_PREFIX}/stream/{{content_id}}"
    name = "api:acestream_proxy:stream"
    requires_auth = True

    async def get(self, request: web.Request, content_id: str) -> web.StreamResponse:
        """Stream the broadcast."""
        return await _serve(request, ContentKind.CONTENT_ID, content_id)

    async def head(self, request: web.Request, content_id: str) -> web.StreamResponse:
        """Headers only."""
        return _head(request, ContentKind.CONTENT_ID, content_id)


class InfohashStreamView(HomeAssistantView):
    """``/api/acestream_proxy/stream/infohash/{infohash}``."""

    url = f"{URL_PREFIX}/stream/infohash/{{infohash}}"
    name = "api:acestream_proxy:stream_infohash"
    requires_auth = True

    async def get(self, request: web.Request, infohash: str) -> web.StreamResponse:
        """Stream the broadcast."""
        return await _serve(request, ContentKind.INFOHASH, infohash)

    async def head(self, request: web.Request, infohash: str) -> web.StreamResponse:
        """Headers only."""
        return _head(request, ContentKind.INFOHASH, infohash)
