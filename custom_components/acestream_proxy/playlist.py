"""Channels in and out: import from an M3U playlist; the URL paths of a channel."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from http import HTTPStatus
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

import aiohttp
from aiohttp.hdrs import (
    ETAG,
    IF_MODIFIED_SINCE,
    IF_NONE_MATCH,
    LAST_MODIFIED,
    LOCATION,
)
from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from yarl import URL

from .channel import Channel, Skipped, parse_m3u, parse_playlist
from .const import DOMAIN, MAX_CHANNELS_PER_ENGINE, SUBENTRY_CHANNEL, URL_PREFIX
from .m3u import decode_playlist
from .stream.engine import ContentKind, ContentRef

if TYPE_CHECKING:
    from collections.abc import Iterable

MAX_PLAYLIST_BYTES: Final = 5 * 1024 * 1024
FETCH_TIMEOUT: Final = aiohttp.ClientTimeout(total=20)
MAX_REDIRECTS: Final = 5
_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
PLAYLIST_PATH: Final = f"{URL_PREFIX}/playlist.m3u"


class PlaylistFetchError(Exception):
    """The playlist URL could not be read."""


class PlaylistTimeoutError(PlaylistFetchError):
    """The server did not send the whole playlist in time."""


class PlaylistTooLargeError(PlaylistFetchError):
    """The playlist is larger than MAX_PLAYLIST_BYTES."""


class NotAPlaylistError(PlaylistFetchError):
    """The answer is no M3U playlist (an HTML page, say)."""


class PlaylistAddressError(PlaylistFetchError):
    """The URL (or a redirect) is no http(s) address, or is Home Assistant's own."""


@dataclass(frozen=True, slots=True)
class Validators:
    """What the server said identifies this version of the list (for a 304)."""

    etag: str | None = None
    last_modified: str | None = None

    def headers(self) -> dict[str, str]:
        """Conditional request headers."""
        headers: dict[str, str] = {}
        if self.etag:
            headers[IF_NONE_MATCH] = self.etag
        if self.last_modified:
            headers[IF_MODIFIED_SINCE] = self.last_modified
        return headers


@dataclass(frozen=True, slots=True)
class Fetched:
    """A fetched playlist; ``text`` is None when the server said it has not changed."""

    text: str | None
    validators: Validators
    encoding: str = "utf-8"


def _own_addresses(hass: HomeAssistant) -> set[tuple[str, int | None]]:
    """(host, port) pairs that reach this Home Assistant."""
    own: set[tuple[str, int | None]] = set()
    for configured in (hass.config.internal_url, hass.config.external_url):
        if configured:
            url = URL(configured)
            own.add(((url.host or "").lower(), url.port))
    if (server := getattr(hass, "http", None)) is not None:
        port = server.server_port
        hosts = {"localhost", "127.0.0.1", "::1", "0.0.0.0"}
        if hass.config.api is not None:
            hosts.add(hass.config.api.local_ip)
        own |= {(host, port) for host in hosts}
    return own


def check_address(hass: HomeAssistant, url: URL) -> None:
    """Refuse what is no http(s) address, or a URL of Home Assistant itself (a
    subscription to our own playlist would feed itself)."""
    if url.scheme not in ("http", "https") or not url.host:
        raise PlaylistAddressError(f"not an http(s) address: {url.scheme}:")
    if url.path.startswith(f"{URL_PREFIX}/") or (
        url.host.lower(),
        url.port,
    ) in _own_addresses(hass):
        raise PlaylistAddressError("that is Home Assistant itself")


async def fetch_playlist_if_changed(
    hass: HomeAssistant, url: str, validators: Validators | None = None
) -> Fetched:
    """Download an M3U playlist, whole, bounded in size and time; with
    ``validators``, a 304 answer (nothing changed) reads nothing."""
    session = async_get_clientsession(hass)
    target = URL(url)
    headers = validators.headers() if validators else {}
    try:
        async with asyncio.timeout(FETCH_TIMEOUT.total):
            # Redirects are followed here, so each hop's address is checked.
            for _ in range(MAX_REDIRECTS + 1):
                check_address(hass, target)
                async with session.get(
                    target, headers=headers, allow_redirects=False
                ) as resp:
                    if resp.status in _REDIRECTS and LOCATION in resp.headers:
                        target = target.join(URL(resp.headers[LOCATION]))
                        continue
                    if resp.status == HTTPStatus.NOT_MODIFIED and validators:
                        return Fetched(None, validators)
                    if resp.status != HTTPStatus.OK:
                        raise PlaylistFetchError(f"HTTP {resp.status}")
                    body = await _read_bounded(resp)
                    new = Validators(
                        resp.headers.get(ETAG), resp.headers.get(LAST_MODIFIED)
                    )
                    charset = resp.charset
                    break
            else:
                raise PlaylistFetchError("too many redirects")
    except TimeoutError as err:
        raise PlaylistTimeoutError("no complete answer in time") from err
    except (aiohttp.ClientError, ValueError) as err:
        raise PlaylistFetchError(str(err) or type(err).__name__) from err
    text, encoding = decode_playlist(bytes(body), charset)
    if not looks_like_m3u(text):
        raise NotAPlaylistError("the answer is not an M3U playlist")
    return Fetched(text, new, encoding)


async def _read_bounded(resp: aiohttp.ClientResponse) -> bytearray:
    body = bytearray()
    # One read() returns what is buffered, not the body: read to EOF.
    async for chunk in resp.content.iter_any():
        body += chunk
        if len(body) > MAX_PLAYLIST_BYTES:
            raise PlaylistTooLargeError("larger than 5 MB")
    return body


async def fetch_playlist(hass: HomeAssistant, url: str) -> str:
    """Download an M3U playlist (see fetch_playlist_if_changed)."""
    fetched = await fetch_playlist_if_changed(hass, url)
    assert fetched.text is not None  # no validators: no 304
    return fetched.text


def looks_like_m3u(text: str) -> bool:
    """An #EXTM3U header, or at least a line with an AceStream link."""
    head = text.lstrip("\ufeff \t\r\n")
    return head.startswith("#EXTM3U") or bool(parse_m3u(text)[0])


@dataclass
class ImportSummary:
    """What an import added and what it left out."""

    imported: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    # Imported, but not as written (a broken #EXTINF line).
    warnings: list[Skipped] = field(default_factory=list)

    def placeholders(self) -> dict[str, str]:
        """For the flow's result text."""
        told = [*self.skipped, *self.warnings]
        reasons = "\n".join(
            f"- line {item.line}: {item.reason} ({item.text[:60]})"
            for item in told[:20]
        )
        if len(told) > 20:
            reasons += f"\n- … and {len(told) - 20} more"
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
    playlist = parse_playlist(text)
    channels = playlist.channels
    summary = ImportSummary(
        skipped=list(playlist.skipped), warnings=list(playlist.warnings)
    )
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
        hass.config_entries.async_add_subentry(entry, channel_subentry(channel))
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


def wants_hls(hass: HomeAssistant, entity_id: str) -> bool:
    """Cast devices cannot play progressive TS (nor can browsers, which have no
    entity)."""
    entry = er.async_get(hass).async_get(entity_id)
    return entry is not None and entry.platform == "cast"


def channel_subentry(channel: Channel) -> ConfigSubentry:
    """A new subentry for ``channel``."""
    return ConfigSubentry(
        data=MappingProxyType(channel.as_data()),
        subentry_type=SUBENTRY_CHANNEL,
        title=channel.name,
        unique_id=channel.unique_id,
    )
