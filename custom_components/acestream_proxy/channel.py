"""Channels: a user's name for a broadcast, and M3U import (no Home Assistant imports)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import re
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from .const import (
    CONF_CHANNEL_GROUP,
    CONF_CHANNEL_ID,
    CONF_CHANNEL_KIND,
    CONF_CHANNEL_LOGO,
    CONF_CHANNEL_NAME,
)
from .stream.engine import HEX40, ContentKind, ContentRef

_ATTR: Final = re.compile(r'([A-Za-z0-9_-]+)="([^"]*)"')
_ACESTREAM_URL: Final = re.compile(r"^acestream://([0-9a-fA-F]{40})\b")


@dataclass(frozen=True, slots=True)
class Channel:
    """A named broadcast."""

    name: str
    ref: ContentRef
    group: str | None = None
    logo: str | None = None

    @property
    def unique_id(self) -> str:
        """Unique id of the channel's subentry: what it plays, never where."""
        return channel_unique_id(self.ref)

    def as_data(self) -> dict[str, Any]:
        """Stored form (subentry data)."""
        data: dict[str, Any] = {
            CONF_CHANNEL_NAME: self.name,
            CONF_CHANNEL_KIND: self.ref.kind.value,
            CONF_CHANNEL_ID: self.ref.value,
        }
        if self.group:
            data[CONF_CHANNEL_GROUP] = self.group
        if self.logo:
            data[CONF_CHANNEL_LOGO] = self.logo
        return data

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Channel:
        """Read the stored form."""
        return cls(
            name=data[CONF_CHANNEL_NAME],
            ref=ContentRef(ContentKind(data[CONF_CHANNEL_KIND]), data[CONF_CHANNEL_ID]),
            group=data.get(CONF_CHANNEL_GROUP),
            logo=data.get(CONF_CHANNEL_LOGO),
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


def parse_m3u(text: str) -> tuple[list[Channel], list[Skipped]]:
    """Channels of an M3U playlist of acestream links; the rest is reported."""
    channels: list[Channel] = []
    skipped: list[Skipped] = []
    seen: set[ContentRef] = set()
    name: str | None = None
    attrs: dict[str, str] = {}
    group_hint: str | None = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line:
            continue
        if line.startswith("#EXTINF"):
            head, _, title = line.partition(",")
            attrs = dict(_ATTR.findall(head))
            name = title.strip() or attrs.get("tvg-name")
            continue
        if line.startswith("#EXTGRP:"):
            group_hint = line.removeprefix("#EXTGRP:").strip() or None
            continue
        if line.startswith("#"):
            continue
        ref = ref_from_link(line)
        if ref is None:
            skipped.append(Skipped(number, line, "not an AceStream link"))
        elif ref in seen:
            skipped.append(Skipped(number, line, "duplicate"))
        else:
            seen.add(ref)
            channels.append(
                Channel(
                    name=name or f"AceStream {ref.value[:8]}",
                    ref=ref,
                    group=attrs.get("group-title") or group_hint,
                    logo=attrs.get("tvg-logo") or None,
                )
            )
        name, attrs, group_hint = None, {}, None
    return channels, skipped
