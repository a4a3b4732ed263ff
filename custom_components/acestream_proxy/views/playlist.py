"""The channel playlist: every channel as an M3U an IPTV app plays as it is."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from aiohttp import web

from ..playlist import PLAYLIST_PATH, iter_channels, stream_path
from .auth import Access, SignedInView, both_forms

# How long stream URLs written into the served playlist stay valid (a user's;
# a key's last as long as the key).
PLAYLIST_STREAM_EXPIRY: Final = timedelta(days=7)


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("\n", " ")


def _channels(request: web.Request, access: Access) -> web.Response:
    """Every channel, each URL in the requester's form, so no header is needed.

    A user's URLs are signed with the requester's own token: they stop working if
    that token is revoked, and on a Home Assistant restart. A key's work as long
    as the key exists.
    """
    origin = f"{request.scheme}://{request.host}"
    lines = ["#EXTM3U"]
    for _, _, channel in sorted(
        iter_channels(access.hass), key=lambda item: (item[2].group or "", item[2].name)
    ):
        attrs = f'tvg-id="{channel.ref.value}"'
        if channel.logo:
            attrs += f' tvg-logo="{_attr(channel.logo)}"'
        if channel.group:
            attrs += f' group-title="{_attr(channel.group)}"'
        lines.append(f"#EXTINF:-1 {attrs},{channel.name.replace(chr(10), ' ')}")
        path = access.path(stream_path(channel.ref))
        lines.append(origin + access.handed_out(path, PLAYLIST_STREAM_EXPIRY))
    return web.Response(
        text="\n".join(lines) + "\n",
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
