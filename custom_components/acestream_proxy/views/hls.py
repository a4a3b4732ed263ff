"""The HLS playlist of a broadcast and its segments."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from http import HTTPStatus
import re
from typing import Final

from aiohttp import web
from homeassistant.helpers.http import KEY_HASS

from ..const import URL_PREFIX
from ..hub import get_hub
from ..stream.broadcast import BroadcastClosedError, ViewerLimitError
from ..stream.engine import ContentRef
from .answers import JOIN_ERRORS, content_of, error, error_for, no_engine
from .auth import Access, SignedInView, both_forms

HLS_MIME: Final = "application/vnd.apple.mpegurl"
# The first playlist request waits this long for the first segment (cold start).
HLS_START_TIMEOUT: Final = 45.0
# Segment URLs in a playlist are signed for this long; players refresh the
# playlist every few seconds, so a fresh signature always comes with it.
SEGMENT_SIGN_EXPIRY: Final = timedelta(hours=1)
_SEGMENT: Final = re.compile(r"^(\d{1,12})\.ts$")


def _hls_client(request: web.Request) -> str:
    """Who is fetching: HLS has no connection to count, only requests."""
    return f"{request.remote}|{request.headers.get('User-Agent', '')}"


async def _serve(
    request: web.Request, access: Access, path: Mapping[str, str]
) -> web.StreamResponse:
    ref = content_of(path)
    if isinstance(ref, web.Response):
        return ref
    head = request.method == "HEAD"
    name = path["name"]
    if name == "index.m3u8":
        if head:
            return _head_playlist(request)
        return await _serve_playlist(request, access, ref)
    if match := _SEGMENT.match(name):
        return _serve_segment(request, ref, int(match.group(1)), count=not head)
    return error(HTTPStatus.NOT_FOUND, "no such HLS resource")


def _head_playlist(request: web.Request) -> web.Response:
    """What the playlist's GET would answer, without starting the broadcast."""
    if not get_hub(request.app[KEY_HASS]).engines:
        return no_engine()
    return web.Response(content_type=HLS_MIME, headers={"Cache-Control": "no-cache"})


async def _serve_playlist(
    request: web.Request, access: Access, ref: ContentRef
) -> web.Response:
    try:
        hls = await get_hub(access.hass).async_open_hls(ref, _hls_client(request))
    except JOIN_ERRORS as err:
        return error_for(err)
    if not await hls.wait_for_segment(HLS_START_TIMEOUT):
        return error(
            HTTPStatus.GATEWAY_TIMEOUT, "the broadcast produced no segment in time"
        )
    # The folder is the request's own (a key's URL has the key in it).
    folder = request.path.rsplit("/", 1)[0]
    playlist = hls.segmenter.playlist(
        lambda segment: access.handed_out(
            f"{folder}/{segment.seq}.ts", SEGMENT_SIGN_EXPIRY
        )
    )
    return web.Response(
        text=playlist, content_type=HLS_MIME, headers={"Cache-Control": "no-cache"}
    )


def _serve_segment(
    request: web.Request, ref: ContentRef, seq: int, *, count: bool = True
) -> web.Response:
    hls = get_hub(request.app[KEY_HASS]).hls_for(ref)
    segment = hls.segmenter.get(seq) if hls is not None else None
    if hls is None or segment is None:
        return error(HTTPStatus.NOT_FOUND, "segment not (or no longer) available")
    if count:
        try:
            hls.touch(_hls_client(request))
        except ViewerLimitError as err:
            return error_for(err)
        except BroadcastClosedError:
            return error(HTTPStatus.NOT_FOUND, "the broadcast ended")
    return web.Response(
        body=segment.data,
        content_type="video/mp2t",
        headers={"Cache-Control": "max-age=60"},
    )


class HlsView(SignedInView):
    """``hls/{content_id}/{name}`` and ``hls/infohash/{infohash}/{name}``.

    ``name`` is ``index.m3u8`` (the playlist) or a segment's ``{seq}.ts``.
    """

    urls = tuple(
        both_forms(
            f"{URL_PREFIX}/hls/{{content_id}}/{{name}}",
            f"{URL_PREFIX}/hls/infohash/{{infohash}}/{{name}}",
        )
    )
    name = "api:acestream_proxy:hls"
    # Players in web pages (a Cast receiver's among them) fetch across origins.
    cors_allowed = True

    async def serve(
        self, request: web.Request, access: Access, path: Mapping[str, str]
    ) -> web.StreamResponse:
        """Playlist or segment; HEAD starts no broadcast and counts no client."""
        if request.method == "GET":
            access.mark_used()
        return await _serve(request, access, path)
