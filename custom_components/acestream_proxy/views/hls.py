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
from ..stream.hls import HlsOutput
from ..stream.hls.window import FIRST_SEQ
from .answers import JOIN_ERRORS, content_of, error, error_for, no_engine
from .auth import Access, SignedInView, both_forms

HLS_MIME: Final = "application/vnd.apple.mpegurl"
# The first playlist request waits this long for the first segment (cold start).
HLS_START_TIMEOUT: Final = 45.0
# Segment URLs in a playlist are signed for this long; players refresh the
# playlist every few seconds, so a fresh signature always comes with it.
SEGMENT_SIGN_EXPIRY: Final = timedelta(hours=1)
_SEGMENT: Final = re.compile(r"^(\d{1,12})(?:\.(\d{1,4}))?\.ts$")
# LL-HLS: a playlist request blocks until this segment (and part) exists.
BLOCKING_PARAMS: Final = frozenset(("_HLS_msn", "_HLS_part", "_HLS_skip"))
# RFC 8216bis 6.2.5.2: a part this far past the newest is refused at once.
ADVANCE_PART_LIMIT: Final = 3
# A blocking reload or a hinted part waits at most this many target durations
# (RFC 8216bis 6.2.5.2: three), unless the output has not cut anything yet.
BLOCK_TARGETS: Final = 3


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
        seq = int(match.group(1))
        if match.group(2) is not None:
            return await _serve_part(
                request, ref, seq, int(match.group(2)), count=not head
            )
        return _serve_segment(request, ref, seq, count=not head)
    return error(HTTPStatus.NOT_FOUND, "no such HLS resource")


def _blocking(request: web.Request) -> tuple[int, int | None] | web.Response | None:
    """The ``_HLS_msn``/``_HLS_part`` of a blocking reload; None if not one."""
    msn = request.query.get("_HLS_msn")
    part = request.query.get("_HLS_part")
    if msn is None:
        if part is None:
            return None
        return error(HTTPStatus.BAD_REQUEST, "_HLS_part needs _HLS_msn")
    if (
        not msn.isdigit()
        or len(msn) > 12
        or (part is not None and not (part.isdigit() and len(part) <= 4))
    ):
        return error(
            HTTPStatus.BAD_REQUEST, "_HLS_msn and _HLS_part must be whole numbers"
        )
    return int(msn), None if part is None else int(part)


def _too_far(hls: HlsOutput, seq: int, part: int | None) -> bool:
    """RFC 8216bis 6.2.5.2: past the newest segment plus two, or a part past the
    newest by the advance limit."""
    segmenter = hls.segmenter
    parts = segmenter.parts_cut
    newest = segmenter.next_seq if parts else segmenter.next_seq - 1
    if seq > newest + 2:
        return True
    return (
        part is not None
        and seq == segmenter.next_seq
        and (part >= parts + ADVANCE_PART_LIMIT)
    )


async def _wait(
    hls: HlsOutput, blocking: tuple[int, int | None] | None
) -> web.Response | None:
    """Wait for what the playlist request needs; None once it is there.

    A first request waits for the startup segments; a blocking reload for the
    segment or part it names.
    """
    if blocking is None:
        if not await hls.wait_for_segment(HLS_START_TIMEOUT):
            return error(
                HTTPStatus.GATEWAY_TIMEOUT, "the broadcast produced no segment in time"
            )
        return None
    if _too_far(hls, *blocking):
        return error(
            HTTPStatus.BAD_REQUEST, "_HLS_msn/_HLS_part is too far past the newest"
        )
    if await hls.wait_for(*blocking, _block_limit(hls)):
        return None
    if hls.broadcaster.closed:
        return error(HTTPStatus.NOT_FOUND, "the broadcast ended")
    return error(
        HTTPStatus.SERVICE_UNAVAILABLE,
        "the requested segment or part did not come in time",
    )


def _block_limit(hls: HlsOutput) -> float:
    segmenter = hls.segmenter
    if segmenter.next_seq == FIRST_SEQ and segmenter.partial is None:
        return HLS_START_TIMEOUT  # nothing cut yet: the broadcast is starting
    return BLOCK_TARGETS * segmenter.target


def _head_playlist(request: web.Request) -> web.Response:
    """What the playlist's GET would answer, without starting the broadcast."""
    if not get_hub(request.app[KEY_HASS]).engines:
        return no_engine()
    return web.Response(content_type=HLS_MIME, headers={"Cache-Control": "no-cache"})


async def _serve_playlist(
    request: web.Request, access: Access, ref: ContentRef
) -> web.Response:
    blocking = _blocking(request)
    if isinstance(blocking, web.Response):
        return blocking
    try:
        hls = await get_hub(access.hass).async_open_hls(ref, _hls_client(request))
    except JOIN_ERRORS as err:
        return error_for(err)
    if (refused := await _wait(hls, blocking)) is not None:
        return refused
    # The folder is the request's own (a key's URL has the key in it).
    folder = request.path.rsplit("/", 1)[0]
    playlist = hls.segmenter.playlist(
        lambda segment: access.handed_out(
            f"{folder}/{segment.seq}.ts", SEGMENT_SIGN_EXPIRY
        ),
        lambda seq, part: access.handed_out(
            f"{folder}/{seq}.{part}.ts", SEGMENT_SIGN_EXPIRY
        ),
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
    if count and (refused := _count(request, hls)) is not None:
        return refused
    return web.Response(
        body=segment.data,
        content_type="video/mp2t",
        headers={"Cache-Control": "max-age=60"},
    )


def _count(request: web.Request, hls: HlsOutput) -> web.Response | None:
    """Count the fetching client; the answer that refuses it, if any."""
    try:
        hls.touch(_hls_client(request))
    except ViewerLimitError as err:
        return error_for(err)
    except BroadcastClosedError:
        return error(HTTPStatus.NOT_FOUND, "the broadcast ended")
    return None


async def _serve_part(
    request: web.Request, ref: ContentRef, seq: int, index: int, *, count: bool
) -> web.Response:
    """A part; the one a playlist hints is answered as soon as it is cut."""
    hls = get_hub(request.app[KEY_HASS]).hls_for(ref)
    if hls is None:
        return error(HTTPStatus.NOT_FOUND, "part not (or no longer) available")
    if count and (refused := _count(request, hls)) is not None:
        return refused
    part = await hls.wait_for_part(seq, index, _block_limit(hls))
    if part is None:
        return error(HTTPStatus.NOT_FOUND, "part not (or no longer) available")
    return web.Response(
        body=part.data,
        content_type="video/mp2t",
        headers={"Cache-Control": "max-age=60"},
    )


class HlsView(SignedInView):
    """``hls/{content_id}/{name}`` and ``hls/infohash/{infohash}/{name}``.

    ``name`` is ``index.m3u8`` (the playlist), a segment's ``{seq}.ts`` or a
    part's ``{seq}.{part}.ts``.
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
    unsigned = BLOCKING_PARAMS

    async def serve(
        self, request: web.Request, access: Access, path: Mapping[str, str]
    ) -> web.StreamResponse:
        """Playlist or segment; HEAD starts no broadcast and counts no client."""
        if request.method == "GET":
            access.mark_used()
        return await _serve(request, access, path)
