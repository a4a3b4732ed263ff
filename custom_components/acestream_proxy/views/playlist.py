"""The channel playlist: every channel as an M3U an IPTV app plays as it is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from aiohttp import web

from ..m3u import render_m3u
from ..playlist import PLAYLIST_PATH, iter_channels, stream_path
from ..stream.engine import ContentRef
from .auth import Access, SignedInView, both_forms

# How long stream URLs written into the served playlist stay valid (a user's;
# a key's last as long as the key).
PLAYLIST_STREAM_EXPIRY: Final = timedelta(days=7)


def _channels(request: web.Request, access: Access) -> web.Response:
    """Every channel, each URL in the requester's form, so no header is needed.

    A user's URLs are signed with the requester's own token: they stop working if
    that token is revoked, and on a Home Assistant restart. A key's work as long
    as the key exists. What the M3U says of each channel is render_m3u's.
    """
    origin = f"{request.scheme}://{request.host}"

    def url_for(ref: ContentRef) -> str:
        path = access.path(stream_path(ref))
        return origin + access.handed_out(path, PLAYLIST_STREAM_EXPIRY)

    return web.Response(
        text=render_m3u((c for _, _, c in iter_channels(access.hass)), url_for),
        content_type="audio/x-mpegurl",
        headers={"Content-Disposition": 'inline; filename="acestream.m3u"'},
    )


class PlaylistView(SignedInView):
    """``playlist.m3u``: the channels."""

    urls = tuple(both_forms(PLAYLIST_PATH))
    name = "api:acestream_proxy:playlist"

    async def serve(
        self, request: web.Request, access: Access, path: Mapping[str, str]
    ) -> web.StreamResponse:
        """The channels (a GET with a key records its use)."""
        if request.method == "GET":
            access.mark_used()
        return _channels(request, access)
