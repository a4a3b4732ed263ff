"""Channels: a user's name for a broadcast, and M3U import (no Home Assistant imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
import re
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from .const import (
    CONF_CHANNEL_GROUP,
    CONF_CHANNEL_GUIDE,
    CONF_CHANNEL_ID,
    CONF_CHANNEL_KIND,
    CONF_CHANNEL_LOGO,
    CONF_CHANNEL_NAME,
    CONF_CHANNEL_SUBSCRIPTION,
    CONF_CHANNEL_TVG_ID,
    CONF_CHANNEL_TVG_NAME,
)
from .stream.engine import HEX40, ContentKind, ContentRef

_ATTR: Final = re.compile(r'([A-Za-z0-9_-]+)="([^"]*)"')
# Optional text fields of a channel, by their key in the stored form.
_OPTIONAL: Final = {
    "group": CONF_CHANNEL_GROUP,
    "logo": CONF_CHANNEL_LOGO,
    "tvg_id": CONF_CHANNEL_TVG_ID,
    "tvg_name": CONF_CHANNEL_TVG_NAME,
    "guide": CONF_CHANNEL_GUIDE,
    "subscription": CONF_CHANNEL_SUBSCRIPTION,
}
_ACESTREAM_URL: Final = re.compile(r"^acestream://([0-9a-fA-F]{40})\b")


@dataclass(frozen=True, slots=True)
class Channel:
    """A named broadcast, with what its source playlist said about it."""

    name: str
    ref: ContentRef
    group: str | None = None
    logo: str | None = None
    tvg_id: str | None = None
    tvg_name: str | None = None
    guide: str | None = None
    subscription: str | None = None

    @property
    def unique_id(self) -> str:
        """Unique id of the channel's subentry: what it plays, never where."""
        return channel_unique_id(self.ref)

    @property
    def picture(self) -> str | None:
        """The logo, as a picture a browser may load (http or https only)."""
        if self.logo and urlsplit(self.logo).scheme in ("http", "https"):
            return self.logo
        return None

    def as_data(self) -> dict[str, Any]:
        """Stored form (subentry data)."""
        data: dict[str, Any] = {
            CONF_CHANNEL_NAME: self.name,
            CONF_CHANNEL_KIND: self.ref.kind.value,
            CONF_CHANNEL_ID: self.ref.value,
        }
        for attr, key in _OPTIONAL.items():
            if value := getattr(self, attr):
                data[key] = value
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Channel:
        """Read the stored form."""
        return cls(
            name=data[CONF_CHANNEL_NAME],
            ref=ContentRef(ContentKind(data[CONF_CHANNEL_KIND]), data[CONF_CHANNEL_ID]),
            **{attr: data.get(key) for attr, key in _OPTIONAL.items()},
        )


def channel_unique_id(ref: ContentRef) -> str:
    """Unique id of a channel: what it plays."""
    return f"{ref.kind.value}:{ref.value}"


@dataclass(frozen=True, slots=True)
class Skipped:
    """An M3U entry that was not imported, and why."""

    line: int
    text: str
    reason: str


def ref_from_link(link: str) -> ContentRef | None:
    """The broadcast an ``acestream://`` link or an engine URL names, if any."""
    link = link.strip()
    if match := _ACESTREAM_URL.match(link):
        return ContentRef.parse(ContentKind.CONTENT_ID, match.group(1))
    if HEX40.match(link):
        return ContentRef.parse(ContentKind.CONTENT_ID, link)
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https"):
        return None
    query = parse_qs(parts.query)
    for key, kind in (
        ("content_id", ContentKind.CONTENT_ID),
        ("id", ContentKind.CONTENT_ID),
        ("infohash", ContentKind.INFOHASH),
    ):
        values = query.get(key)
        if values and HEX40.match(values[0]):
            return ContentRef.parse(kind, values[0])
    # Our own URLs, and proxies that put the id in the path.
    segments = [s for s in parts.path.split("/") if s]
    if segments and HEX40.match(segments[-1]):
        kind = (
            ContentKind.INFOHASH
            if len(segments) > 1 and segments[-2] == "infohash"
            else ContentKind.CONTENT_ID
        )
        return ContentRef.parse(kind, segments[-1])
    return None


@dataclass(slots=True)
class Playlist:
    """What an M3U playlist holds: its channels, its guide, and what was left out."""

    channels: list[Channel] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Read, but not as written: a broken #EXTINF line, say.
    warnings: list[Skipped] = field(default_factory=list)
    guide: str | None = None


def _split_extinf(line: str) -> tuple[str, str | None]:
    """The attributes and the title of an #EXTINF line, at the first comma
    outside quotes (group-title="News, Sports" is one value). None: no title."""
    quoted = False
    for index, char in enumerate(line):
        if char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            return line[:index], line[index + 1 :]
    return line, None


def _guide(header: str) -> str | None:
    attrs = dict(_ATTR.findall(header))
    urls = attrs.get("url-tvg") or attrs.get("x-tvg-url") or ""
    return ",".join(u for u in (p.strip() for p in urls.split(",")) if u) or None


class _Parser:
    """Reads a playlist line by line: an #EXTINF (and #EXTGRP) describes the
    link that follows it."""

    def __init__(self) -> None:
        self.result = Playlist()
        self.seen: set[ContentRef] = set()
        self.extinf: tuple[int, str] | None = None
        self.attrs: dict[str, str] = {}
        self.name: str | None = None
        self.group_hint: str | None = None

    def line(self, number: int, line: str) -> None:
        if line.startswith("#EXTM3U"):
            self.result.guide = self.result.guide or _guide(line)
        elif line.startswith("#EXTINF"):
            self.end_extinf()
            head, title = _split_extinf(line)
            self.attrs = dict(_ATTR.findall(head))
            self.name = (title or "").strip() or self._attr("tvg-name")
            if title is None:
                self.result.warnings.append(
                    Skipped(number, line, "broken #EXTINF line (no title)")
                )
            self.extinf = (number, line)
        elif line.startswith("#EXTGRP:"):
            self.group_hint = line.removeprefix("#EXTGRP:").strip() or None
        elif not line.startswith("#"):
            self.link(number, line)

    def _attr(self, key: str) -> str | None:
        return self.attrs.get(key, "").strip() or None

    def link(self, number: int, line: str) -> None:
        ref = ref_from_link(line)
        if ref is None:
            self.result.skipped.append(Skipped(number, line, "not an AceStream link"))
        elif ref in self.seen:
            self.result.skipped.append(Skipped(number, line, "duplicate"))
        else:
            self.seen.add(ref)
            self.result.channels.append(
                Channel(
                    name=self.name or f"AceStream {ref.value[:8]}",
                    ref=ref,
                    group=self._attr("group-title") or self.group_hint,
                    logo=self._attr("tvg-logo"),
                    tvg_id=self._attr("tvg-id"),
                    tvg_name=self._attr("tvg-name"),
                )
            )
        self.extinf, self.name, self.attrs, self.group_hint = None, None, {}, None

    def end_extinf(self) -> None:
        if self.extinf is not None:
            self.result.skipped.append(Skipped(*self.extinf, "#EXTINF without a link"))


def parse_playlist(text: str) -> Playlist:
    """Channels of an M3U playlist of acestream links; the rest is reported.

    Total: any text parses, and every line that is neither a comment nor a
    channel is in ``skipped`` with its reason.
    """
    parser = _Parser()
    for number, raw in enumerate(text.splitlines(), start=1):
        if line := raw.strip().lstrip("\ufeff"):
            parser.line(number, line)
    parser.end_extinf()
    result = parser.result
    if result.guide:
        result.channels = [replace(c, guide=result.guide) for c in result.channels]
    return result


def parse_m3u(text: str) -> tuple[list[Channel], list[Skipped]]:
    """Channels of an M3U playlist, and the entries left out."""
    playlist = parse_playlist(text)
    return playlist.channels, playlist.skipped
