"""The MPEG-TS stream of a broadcast, shared by every viewer."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from contextlib import AbstractContextManager
from typing import Final

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from homeassistant.helpers.http import KEY_HASS

from ..const import URL_PREFIX
from ..hub import get_hub
from ..stream.broadcast import EndReason, Viewer
from .answers import JOIN_ERRORS, content_of, error_for, no_engine
from .auth import Access, SignedInView, both_forms

TS_HEADERS: Final = {
    "Content-Type": "video/mp2t",
    "Cache-Control": "no-store",
    # Tell reverse proxies (nginx) not to buffer a live stream.
    "X-Accel-Buffering": "no",
}


class LiveStreamResponse(web.StreamResponse):
    """A viewer's stream, written by aiohttp once the handler has returned.

    The handler only signs the viewer in and joins it, then returns this
    response; aiohttp prepares it and calls :meth:`write_eof`, which runs the
    viewer to the end. So Home Assistant's middlewares and the view return at
    once instead of staying suspended, a coroutine each, for the life of every
    stream: 2,000 viewers joining then add far fewer objects to those Python's
    collector tracks, and a join storm no longer sets off a full collection that
    stops the process for a third of a second (see the README's joins section).
    aiohttp's Payload would do the same from a ``web.Response``, but its API
    differs across the aiohttp versions Home Assistant ships (``close``,
    ``decode``) and each one carries its own headers.

    A live body is delimited by the end of the connection, not chunked: aiohttp
    frames a body of unknown length in HTTP/1.1 as chunked, a size line and a
    CRLF around every write, which (before Python 3.13.2, where aiohttp cannot
    use writelines) copies every chunk once per viewer. A live stream never ends
    on its own and its connection is never reused, so ``Connection: close``
    delimits the body (RFC 9112 section 6.3) and the ring's chunks go to the
    socket as they are. aiohttp's WebSocketResponse turns the length check off
    the same way.
    """

    _length_check = False

    def __init__(self, viewer: Viewer, watch: AbstractContextManager[None]) -> None:
        """The stream of ``viewer`` (joined), ``watch`` entered and left with it."""
        super().__init__(headers=TS_HEADERS)
        self.force_close()
        self._viewer: Viewer | None = viewer
        self._watch = watch
        self._writer: AbstractStreamWriter | None = None
        self._transport: asyncio.Transport | None = None

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        """Send the headers; a viewer whose client is gone already leaves."""
        try:
            self._writer = await super().prepare(request)
        except BaseException:
            # The transport closed between the handler's return and now (the
            # client left, or a revoked key's stream was aborted): aiohttp will
            # not call write_eof, so nothing else would end this viewer.
            self._end()
            raise
        self._transport = request.transport
        return self._writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Run the viewer until the broadcast ends, then end the body.

        A client that leaves ends it with ConnectionResetError (or cancels it),
        which aiohttp takes as a premature disconnection.
        """
        viewer, writer = self._viewer, self._writer
        # aiohttp calls this once, after prepare.
        assert viewer is not None
        assert writer is not None
        try:
            # The writer's own write: no extra coroutine per chunk and viewer.
            reason = await viewer.stream(writer.write)
        finally:
            self._end()
        if reason is EndReason.DROPPED:
            # The client stopped reading: do not wait for it to take the rest.
            if self._transport is not None:
                self._transport.abort()
            raise ConnectionResetError("dropped: the viewer took no data")
        await super().write_eof()

    def _end(self) -> None:
        if (viewer := self._viewer) is not None:
            self._viewer = None
            viewer.leave()
            self._watch.__exit__(None, None, None)


async def _serve(
    request: web.Request, access: Access, content: Mapping[str, str]
) -> web.StreamResponse:
    # A key's stream is watched from the request on, as before the viewer
    # streamed after the handler: a stream to the end of LiveStreamResponse, any
    # other answer to here.
    watch = access.watching(request)
    watch.__enter__()
    try:
        answer = await _join(request, content, watch)
    except BaseException:
        watch.__exit__(None, None, None)
        raise
    if not isinstance(answer, LiveStreamResponse):
        watch.__exit__(None, None, None)
    return answer


async def _join(
    request: web.Request,
    content: Mapping[str, str],
    watch: AbstractContextManager[None],
) -> web.StreamResponse:
    ref = content_of(content)
    if isinstance(ref, web.Response):
        return ref
    try:
        viewer = await get_hub(request.app[KEY_HASS]).async_open_viewer(ref)
    except JOIN_ERRORS as err:
        return error_for(err)
    return LiveStreamResponse(viewer, watch)


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
        return await _serve(request, access, path)
