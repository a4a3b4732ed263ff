"""The M3U we serve to IPTV apps, and reading the bytes of one we fetch
(no Home Assistant imports)."""

from __future__ import annotations

import codecs
import contextlib
from typing import TYPE_CHECKING, Final

from .stream.engine import ContentKind

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from .channel import Channel
    from .stream.engine import ContentRef

# Our own attribute for what a channel plays: tvg-id is the source's, for guides.
ATTR_FOR_KIND: Final = {
    ContentKind.CONTENT_ID: "acestream-content-id",
    ContentKind.INFOHASH: "acestream-infohash",
}


def _attr(value: str) -> str:
    return value.replace('"', "'").replace("\r", " ").replace("\n", " ")


def _line(value: str) -> str:
    return value.replace("\r", " ").replace("\n", " ")


def guide_urls(channels: Iterable[Channel]) -> list[str]:
    """The sources' guides (url-tvg), each once, in the order first seen."""
    urls: dict[str, None] = {}
    for channel in channels:
        for url in (channel.guide or "").split(","):
            if url := url.strip():
                urls[url] = None
    return list(urls)


def render_m3u(
    channels: Iterable[Channel], url_for: Callable[[ContentRef], str]
) -> str:
    """Every channel, sorted by group then name, with the sources' tvg-id,
    tvg-name, logo and group, and their guides in the header."""
    ordered = sorted(
        channels, key=lambda c: ((c.group or "").casefold(), c.name.casefold())
    )
    header = "#EXTM3U"
    if guides := guide_urls(ordered):
        joined = _attr(",".join(guides))
        header += f' url-tvg="{joined}" x-tvg-url="{joined}"'
    lines = [header]
    for channel in ordered:
        attrs = [
            ("tvg-id", channel.tvg_id),
            ("tvg-name", channel.tvg_name),
            ("tvg-logo", channel.logo),
            ("group-title", channel.group),
            (ATTR_FOR_KIND[channel.ref.kind], channel.ref.value),
        ]
        text = " ".join(f'{key}="{_attr(value)}"' for key, value in attrs if value)
        name = _line(channel.name)
        lines.append(f"#EXTINF:-1 {text},{name}")
        # The same again for players that read no #EXTINF attributes: Kodi and
        # others take the group from #EXTGRP, VLC 3 the logo from #EXTALBUMARTURL.
        if channel.group:
            lines.append(f"#EXTGRP:{_line(channel.group)}")
        if channel.logo:
            lines.append(f"#EXTALBUMARTURL:{_line(channel.logo)}")
        lines.append(url_for(channel.ref))
    return "\n".join(lines) + "\n"


def decode_playlist(body: bytes, charset: str | None = None) -> tuple[str, str]:
    """The text of a playlist, and the encoding it was read in.

    UTF-8 (with or without BOM) first; else the charset the server named; else
    Windows-1252, and Latin-1 for the few bytes that has no letter for: every
    byte becomes a letter, so no channel is lost to the encoding.
    """
    candidates = ["utf-8-sig"]
    if charset:
        with contextlib.suppress(LookupError):
            candidates.append(codecs.lookup(charset).name)
    candidates.append("cp1252")
    for encoding in candidates:
        try:
            return body.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return body.decode("latin-1"), "latin-1"
