"""The MPEG-TS stream of a broadcast, shared by every viewer."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

from aiohttp import web
from homeassistant.helpers.http import KEY_HASS

from ..const import LOGGER, URL_PREFIX
from ..hub import get_hub
from ..stream.broadcast import EndReason
from .answers import JOIN_ERRORS, content_of, error_for, no_engine
from .auth import Access, SignedInView, both_forms

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


async def _serve(
    request: web.Request, content: Mapping[str, str]
) -> web.StreamResponse:
    ref = content_of(content)
    if isinstance(ref, web.Response):
        return ref
    hub = get_hub(request.app[KEY_HASS])
    try:
        viewer = await hub.async_open_viewer(ref)
    except JOIN_ERRORS as err:
        return error_for(err)

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


def _head(request: web.Request, content: Mapping[str, str]) -> web.StreamResponse:
    """Answer what a GET would serve, without opening an engine session."""
    ref = content_of(content)
    if isinstance(ref, web.Response):
        return ref
    if not get_hub(request.app[KEY_HASS]).engines:
        return no_engine()
    response = web.Response(headers=TS_HEADERS)
    # The GET's body ends with its connection: say so here too.
    response.force_close()
    return response


class StreamView(SignedInView):
    """``stream/{content_id}`` and ``stream/infohash/{infohash}``: MPEG-TS."""

    urls = tuple(
        both_forms(
            f"{URL_PREFIX}/stream/{{content_id}}",
            f"{URL_PREFIX}/stream/infohash/{{infohash}}",
        )
    )
    name = "api:acestream_proxy:stream"

    async def serve(
        self, request: web.Request, access: Access, path: Mapping[str, str]
    ) -> web.StreamResponse:
        """Stream the broadcast (while the key, if any, exists); HEAD: headers."""
        if request.method == "HEAD":
            return _head(request, path)
        with access.watching(request):
            return await _serve(request, path)
