"""HTTP views: the MPEG-TS stream of a broadcast, shared by every viewer."""

from __future__ import annotations

from datetime import timedelta
from http import HTTPStatus
import re
from typing import ClassVar, Final

from aiohttp import web
from homeassistant.components.http.auth import async_sign_path
from homeassistant.core import HomeAssistant
from homeassistant.helpers.http import KEY_HASS, HomeAssistantView

from .access import KEY_URL_PREFIX, AccessKey, get_keys, require_auth
from .const import LOGGER, URL_PREFIX
from .hub import RETRY_AFTER_LIMIT, CapacityError, NoEngineError, get_hub
from .stream.broadcast import BroadcastClosedError, EndReason, ViewerLimitError
from .stream.engine import (
    ContentKind,
    ContentRef,
    EngineApiError,
    EngineConnectionError,
    EngineError,
    EngineTimeoutError,
)

HLS_MIME: Final = "application/vnd.apple.mpegurl"
# The first playlist request waits this long for the first segment (cold start).
HLS_START_TIMEOUT: Final = 45.0
# Segment URLs in a playlist are signed for this long; players refresh the
# playlist every few seconds, so a fresh signature always comes with it.
SEGMENT_SIGN_EXPIRY: Final = timedelta(hours=1)
_SEGMENT: Final = re.compile(r"^(\d{1,12})\.ts$")

TS_HEADERS: Final = {
    "Content-Type": "video/mp2t",
    "Cache-Control": "no-store",
    # Tell reverse proxies (nginx) not to buffer a live stream.
    "X-Accel-Buffering": "no",
}


class LiveStreamResponse(web.StreamResponse):
    """A live body delimited by the end of the connection, not chunked.

    aiohttp frames a body of unknown length in HTTP/1.1 as chunked: a size line and a
    CRLF around every write, which (before Python 3.13.2, where aiohttp cannot use
    writelines) copies every chunk once per viewer. A live stream never ends on its
    own and its connection is never reused, so ``Connection: close`` delimits the
    body (RFC 9112 section 6.3) and the ring's chunks go to the socket as they are.
    aiohttp's WebSocketResponse turns the length check off the same way.
    """

    _length_check = False

    def __init__(self) -> None:
        """A TS response whose connection closes when the stream ends."""
        super().__init__(headers=TS_HEADERS)
        self.force_close()


def async_register_views(hass: HomeAssistant) -> None:
    """Register the views once (views cannot be unregistered)."""
    for view in (
        ContentIdStreamView,
        InfohashStreamView,
        ContentIdHlsView,
        InfohashHlsView,
        KeyContentIdStreamView,
        KeyInfohashStreamView,
        KeyContentIdHlsView,
        KeyInfohashHlsView,
    ):
        hass.http.register_view(view())


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

    response = LiveStreamResponse()
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
    response = web.Response(headers=TS_HEADERS)
    # The GET's body ends with its connection: say so here too.
    response.force_close()
    return response


async def _key_of(request: web.Request, token: str) -> AccessKey | web.Response:
    key = await get_keys(request.app[KEY_HASS]).async_authorize(token, request)
    if key is None:
        # Answered, not raised: Home Assistant's failed-login warning would write
        # the requested URL, and so the key, to the log.
        return _error(HTTPStatus.UNAUTHORIZED, "unknown or revoked access key")
    return key


class _StreamView(HomeAssistantView):
    """MPEG-TS of a broadcast, to a bearer token or a signed URL.

    Authentication is checked here rather than by Home Assistant, which accepts
    signatures on GET only: HEAD must answer as GET would.
    """

    requires_auth = False
    kind: ClassVar[ContentKind]

    async def get(self, request: web.Request, ref: str) -> web.StreamResponse:
        """Stream the broadcast."""
        require_auth(request)
        return await _serve(request, self.kind, ref)

    async def head(self, request: web.Request, ref: str) -> web.StreamResponse:
        """Headers only."""
        require_auth(request)
        return _head(request, self.kind, ref)


class ContentIdStreamView(_StreamView):
    """``/api/acestream_proxy/stream/{content_id}``."""

    url = f"{URL_PREFIX}/stream/{{ref}}"
    name = "api:acestream_proxy:stream"
    kind = ContentKind.CONTENT_ID


class InfohashStreamView(_StreamView):
    """``/api/acestream_proxy/stream/infohash/{infohash}``."""

    url = f"{URL_PREFIX}/stream/infohash/{{ref}}"
    name = "api:acestream_proxy:stream_infohash"
    kind = ContentKind.INFOHASH


class _KeyStreamView(HomeAssistantView):
    """MPEG-TS of a broadcast, to an app's access key (in the path)."""

    requires_auth = False
    kind: ClassVar[ContentKind]

    async def get(self, request: web.Request, key: str, ref: str) -> web.StreamResponse:
        """Stream the broadcast while the key exists."""
        found = await _key_of(request, key)
        if isinstance(found, web.Response):
            return found
        with get_keys(request.app[KEY_HASS]).stream(found, request):
            return await _serve(request, self.kind, ref)

    async def head(
        self, request: web.Request, key: str, ref: str
    ) -> web.StreamResponse:
        """Headers only."""
        found = await _key_of(request, key)
        if isinstance(found, web.Response):
            return found
        return _head(request, self.kind, ref)


class KeyContentIdStreamView(_KeyStreamView):
    """``/api/acestream_proxy/key/{key}/stream/{content_id}``."""

    url = f"{KEY_URL_PREFIX}/{{key}}/stream/{{ref}}"
    name = "api:acestream_proxy:key_stream"
    kind = ContentKind.CONTENT_ID


class KeyInfohashStreamView(_KeyStreamView):
    """``/api/acestream_proxy/key/{key}/stream/infohash/{infohash}``."""

    url = f"{KEY_URL_PREFIX}/{{key}}/stream/infohash/{{ref}}"
    name = "api:acestream_proxy:key_stream_infohash"
    kind = ContentKind.INFOHASH


def _hls_client(request: web.Request) -> str:
    """Who is fetching: HLS has no connection to count, only requests."""
    return f"{request.remote}|{request.headers.get('User-Agent', '')}"


async def _serve_hls(
    request: web.Request,
    kind: ContentKind,
    value: str,
    name: str,
    key: AccessKey | None = None,
) -> web.StreamResponse:
    ref = _parse(kind, value)
    if isinstance(ref, web.Response):
        return ref
    head = request.method == "HEAD"
    if name == "index.m3u8":
        if head:
            return _head_hls_playlist(request)
        return await _serve_hls_playlist(request, ref, key)
    if match := _SEGMENT.match(name):
        return _serve_hls_segment(request, ref, int(match.group(1)), count=not head)
    return _error(HTTPStatus.NOT_FOUND, "no such HLS resource")


def _head_hls_playlist(request: web.Request) -> web.Response:
    """What the playlist's GET would answer, without starting the broadcast."""
    if not get_hub(request.app[KEY_HASS]).engines:
        return _error(
            HTTPStatus.NOT_FOUND, "no AceStream engine is configured and loaded"
        )
    return web.Response(content_type=HLS_MIME, headers={"Cache-Control": "no-cache"})


async def _serve_hls_playlist(
    request: web.Request, ref: ContentRef, key: AccessKey | None
) -> web.Response:
    hass = request.app[KEY_HASS]
    try:
        hls = await get_hub(hass).async_open_hls(ref, _hls_client(request))
    except (NoEngineError, CapacityError, ViewerLimitError, EngineError) as err:
        return _error_for(err)
    if not await hls.wait_for_segment(HLS_START_TIMEOUT):
        return _error(
            HTTPStatus.GATEWAY_TIMEOUT, "the broadcast produced no segment in time"
        )
    folder = request.path.rsplit("/", 1)[0]
    if key is not None:
        # The key is in the folder: segment URLs need nothing more.
        playlist = hls.segmenter.playlist(lambda segment: f"{folder}/{segment.seq}.ts")
    else:
        # Each segment URL carries its own signature (with the requester's
        # identity), so a player that got one signed playlist URL plays to the end.
        playlist = hls.segmenter.playlist(
            lambda segment: async_sign_path(
                hass, f"{folder}/{segment.seq}.ts", SEGMENT_SIGN_EXPIRY
            )
        )
    return web.Response(
        text=playlist, content_type=HLS_MIME, headers={"Cache-Control": "no-cache"}
    )


def _serve_hls_segment(
    request: web.Request, ref: ContentRef, seq: int, *, count: bool = True
) -> web.Response:
    hls = get_hub(request.app[KEY_HASS]).hls_for(ref)
    segment = hls.segmenter.get(seq) if hls is not None else None
    if hls is None or segment is None:
        return _error(HTTPStatus.NOT_FOUND, "segment not (or no longer) available")
    if count:
        try:
            hls.touch(_hls_client(request))
        except ViewerLimitError as err:
            return _error_for(err)
        except BroadcastClosedError:
            return _error(HTTPStatus.NOT_FOUND, "the broadcast ended")
    return web.Response(
        body=segment.data,
        content_type="video/mp2t",
        headers={"Cache-Control": "max-age=60"},
    )


class _HlsView(HomeAssistantView):
    """HLS playlist and segments, to a bearer token or a signed URL."""

    requires_auth = False
    cors_allowed = True
    kind: ClassVar[ContentKind]

    async def get(
        self, request: web.Request, ref: str, name: str
    ) -> web.StreamResponse:
        """Playlist or segment."""
        require_auth(request)
        return await _serve_hls(request, self.kind, ref, name)

    async def head(
        self, request: web.Request, ref: str, name: str
    ) -> web.StreamResponse:
        """Headers only; no broadcast is started and no client counted."""
        require_auth(request)
        return await _serve_hls(request, self.kind, ref, name)


class ContentIdHlsView(_HlsView):
    """``/api/acestream_proxy/hls/{content_id}/index.m3u8`` and its segments."""

    url = f"{URL_PREFIX}/hls/{{ref}}/{{name}}"
    name = "api:acestream_proxy:hls"
    kind = ContentKind.CONTENT_ID


class InfohashHlsView(_HlsView):
    """``/api/acestream_proxy/hls/infohash/{infohash}/index.m3u8`` and segments."""

    url = f"{URL_PREFIX}/hls/infohash/{{ref}}/{{name}}"
    name = "api:acestream_proxy:hls_infohash"
    kind = ContentKind.INFOHASH


class _KeyHlsView(HomeAssistantView):
    """HLS playlist and segments, to an app's access key (in the path)."""

    requires_auth = False
    cors_allowed = True
    kind: ClassVar[ContentKind]

    async def get(
        self, request: web.Request, key: str, ref: str, name: str
    ) -> web.StreamResponse:
        """Playlist or segment while the key exists."""
        found = await _key_of(request, key)
        if isinstance(found, web.Response):
            return found
        get_keys(request.app[KEY_HASS]).mark_used(found)
        return await _serve_hls(request, self.kind, ref, name, found)

    async def head(
        self, request: web.Request, key: str, ref: str, name: str
    ) -> web.StreamResponse:
        """Headers only."""
        found = await _key_of(request, key)
        if isinstance(found, web.Response):
            return found
        return await _serve_hls(request, self.kind, ref, name, found)


class KeyContentIdHlsView(_KeyHlsView):
    """``/api/acestream_proxy/key/{key}/hls/{content_id}/{name}``."""

    url = f"{KEY_URL_PREFIX}/{{key}}/hls/{{ref}}/{{name}}"
    name = "api:acestream_proxy:key_hls"
    kind = ContentKind.CONTENT_ID


class KeyInfohashHlsView(_KeyHlsView):
    """``/api/acestream_proxy/key/{key}/hls/infohash/{infohash}/{name}``."""

    url = f"{KEY_URL_PREFIX}/{{key}}/hls/infohash/{{ref}}/{{name}}"
    name = "api:acestream_proxy:key_hls_infohash"
    kind = ContentKind.INFOHASH
