"""Channels in and out: import from an M3U playlist; the URL paths of a channel."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import aiohttp
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .channel import Channel, Skipped, parse_m3u
from .const import DOMAIN, MAX_CHANNELS_PER_ENGINE, SUBENTRY_CHANNEL, URL_PREFIX
from .stream.engine import ContentKind, ContentRef

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_PLAYLIST_BYTES: Final = 5 * 1024 * 1024
FETCH_TIMEOUT: Final = aiohttp.ClientTimeout(total=20)
PLAYLIST_PATH: Final = f"{URL_PREFIX}/playlist.m3u"


class PlaylistFetchError(Exception):
    """The playlist URL could not be read."""


class PlaylistTimeoutError(PlaylistFetchError):
    """The server did not send the whole playlist in time."""


class PlaylistTooLargeError(PlaylistFetchError):
    """The playlist is larger than MAX_PLAYLIST_BYTES."""


class NotAPlaylistError(PlaylistFetchError):
    """The answer is no M3U playlist (an HTML page, say)."""


async def fetch_playlist(hass: HomeAssistant, url: str) -> str:
    """Download an M3U playlist, whole, bounded in size and time."""
    session = async_get_clientsession(hass)
    body = bytearray()
    try:
        async with session.get(url, timeout=FETCH_TIMEOUT) as resp:
            if resp.status != 200:
                raise PlaylistFetchError(f"HTTP {resp.status}")
            # One read() returns what is buffered, not the body: read to EOF.
            async for chunk in resp.content.iter_any():
                body += chunk
                if len(body) > MAX_PLAYLIST_BYTES:
                    raise PlaylistTooLargeError("larger than 5 MB")
    except TimeoutError as err:
        raise PlaylistTimeoutError("no complete answer in time") from err
    except (aiohttp.ClientError, ValueError) as err:
        raise PlaylistFetchError(str(err) or type(err).__name__) from err
    text = body.decode("utf-8", "replace")
    if not looks_like_m3u(text):
        raise NotAPlaylistError("the answer is not an M3U playlist")
    return text


def looks_like_m3u(text: str) -> bool:
    """An #EXTM3U header, or at least a line with an AceStream link."""
    head = text.lstrip("\ufeff \t\r\n")
    return head.startswith("#EXTM3U") or bool(parse_m3u(text)[0])


@dataclass
class ImportSummary:
    """What an import added and what it left out."""

    imported: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def placeholders(self) -> dict[str, str]:
        """For the flow's result text."""
        reasons = "\n".join(
            f"- line {item.line}: {item.reason} ({item.text[:60]})"
            for item in self.skipped[:20]
        )
        if len(self.skipped) > 20:
            reasons += f"\n- … and {len(self.skipped) - 20} more"
        return {
            "imported": str(len(self.imported)),
            "skipped": str(len(self.skipped)),
            "details": reasons or "-",
        }


def iter_channels(
    hass: HomeAssistant,
) -> Iterable[tuple[ConfigEntry, ConfigSubentry, Channel]]:
    """Every channel of every engine entry, loaded or not."""
    for entry in hass.config_entries.async_entries(DOMAIN):
        for subentry in entry.subentries.values():
            if subentry.subentry_type == SUBENTRY_CHANNEL:
                yield entry, subentry, Channel.from_data(subentry.data)


class TooManyChannelsError(Exception):
    """The channels to add do not fit in the engine entry (nothing was added)."""

    def __init__(self, count: int, room: int) -> None:
        """``count`` new channels, ``room`` for that many more."""
        super().__init__(f"{count} new channels, room for {room}")
        self.count = count
        self.room = room

    def placeholders(self) -> dict[str, str]:
        """For the flow's message."""
        return {
            "count": str(self.count),
            "room": str(self.room),
            "max": str(MAX_CHANNELS_PER_ENGINE),
        }


def channel_room(entry: ConfigEntry) -> int:
    """How many more channels ``entry`` takes (see MAX_CHANNELS_PER_ENGINE)."""
    count = sum(
        1 for sub in entry.subentries.values() if sub.subentry_type == SUBENTRY_CHANNEL
    )
    return max(0, MAX_CHANNELS_PER_ENGINE - count)


def import_channels(
    hass: HomeAssistant, entry: ConfigEntry, text: str
) -> ImportSummary:
    """Add the playlist's channels to ``entry``; known ones are skipped.

    All or nothing: when the new ones do not fit (channel_room), none is added
    and TooManyChannelsError says how many would.
    """
    channels, skipped = parse_m3u(text)
    summary = ImportSummary(skipped=list(skipped))
    known = {channel.ref for _, _, channel in iter_channels(hass)}
    new: list[Channel] = []
    for channel in channels:
        if channel.ref in known:
            summary.skipped.append(Skipped(0, channel.name, "already a channel"))
            continue
        known.add(channel.ref)
        new.append(channel)
    if len(new) > (room := channel_room(entry)):
        raise TooManyChannelsError(len(new), room)
    for channel in new:
        hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data=MappingProxyType(channel.as_data()),
                subentry_type=SUBENTRY_CHANNEL,
                title=channel.name,
                unique_id=channel.unique_id,
            ),
        )
        summary.imported.append(channel.name)
    return summary


def stream_path(ref: ContentRef) -> str:
    """Our TS URL path for a broadcast (identity in the path, never in a query)."""
    if ref.kind is ContentKind.INFOHASH:
        return f"{URL_PREFIX}/stream/infohash/{ref.value}"
    return f"{URL_PREFIX}/stream/{ref.value}"


def hls_path(ref: ContentRef) -> str:
    """Our HLS playlist path for a broadcast."""
    if ref.kind is ContentKind.INFOHASH:
        return f"{URL_PREFIX}/hls/infohash/{ref.value}/index.m3u8"
    return f"{URL_PREFIX}/hls/{ref.value}/index.m3u8"


def wants_hls(hass: HomeAssistant, entity_id: str | None) -> bool:
    """Browsers (no target player) and Cast devices cannot play progressive TS."""
    if entity_id is None:
        return True
    entry = er.async_get(hass).async_get(entity_id)
    return entry is not None and entry.platform == "cast"
