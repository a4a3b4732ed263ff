"""Media browser: the channels, grouped, each playable on any media player; and,
where Home Assistant has media search, a search over channels and broadcasts."""

from __future__ import annotations

from pathlib import PurePath
from typing import TYPE_CHECKING, Final
from urllib.parse import quote

from homeassistant.components.media_player.const import MediaClass
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)
from homeassistant.exceptions import ServiceValidationError

from . import compat
from .const import DOMAIN
from .data import get_hub
from .devices import BroadcastTarget, adhoc_target
from .playlist import hls_path, iter_channels, stream_path, wants_hls
from .recordings import SUBFOLDER, get_recordings, media_root
from .stream.engine import ContentKind, ContentRef

if TYPE_CHECKING:
    from collections.abc import Collection

    from homeassistant.core import HomeAssistant

    from .channel import Channel
    from .compat import SearchMedia, SearchMediaQuery

TS_MIME = "video/mp2t"
HLS_MIME = "application/vnd.apple.mpegurl"
# Home Assistant's frontend plays HLS in its own player (hls.js) only under this
# type, its camera streams' own; under the other it shows "media not supported".
BROWSER_HLS_MIME = "application/x-mpegURL"
GROUP_PREFIX = "group/"
CHANNEL_PREFIX = "channel/"
RECORDINGS: Final = "recordings"
RECORDING_PREFIX: Final = "recording/"
RECORDING_MIMES: Final = {".mp4": "video/mp4", ".ts": TS_MIME}
# As Home Assistant's own local media search: a one-letter query over thousands
# of imported channels must not send them all to the browser.
MAX_SEARCH_RESULTS: Final = 100


async def async_get_media_source(hass: HomeAssistant) -> AceStreamMediaSource:
    """The integration's media source."""
    return AceStreamMediaSource(hass)


def _playable(ref: ContentRef, title: str, logo: str | None) -> BrowseMediaSource:
    return BrowseMediaSource(
        domain=DOMAIN,
        identifier=f"{CHANNEL_PREFIX}{ref.kind.value}/{ref.value}",
        media_class=MediaClass.CHANNEL,
        media_content_type=TS_MIME,
        title=title,
        can_play=True,
        can_expand=False,
        thumbnail=logo,
    )


def _channel_item(channel: Channel) -> BrowseMediaSource:
    return _playable(channel.ref, channel.name, channel.logo)


def _directory(
    identifier: str, title: str, children: list[BrowseMediaSource]
) -> BrowseMediaSource:
    return BrowseMediaSource(
        domain=DOMAIN,
        identifier=identifier or None,
        media_class=MediaClass.DIRECTORY,
        media_content_type="",
        title=title,
        can_play=False,
        can_expand=True,
        children=children,
        children_media_class=MediaClass.CHANNEL,
        **compat.searchable(),
    )


class AceStreamMediaSource(MediaSource):
    """Browse and resolve AceStream channels."""

    name = "AceStream"

    def __init__(self, hass: HomeAssistant) -> None:
        """Bind to hass."""
        super().__init__(DOMAIN)
        self.hass = hass

    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        """A relative URL (the player signs it): HLS for Cast and browsers; a
        recording through Home Assistant's own media files."""
        if item.identifier.startswith(RECORDING_PREFIX):
            return await self._async_resolve_recording(item.identifier)
        kind, _, value = item.identifier.removeprefix(CHANNEL_PREFIX).partition("/")
        try:
            ref = ContentRef.parse(ContentKind(kind), value)
        except ValueError as err:
            raise Unresolvable(
                translation_domain=DOMAIN,
                translation_key="unknown_media",
                translation_placeholders={"identifier": item.identifier},
            ) from err
        if item.target_media_player is None:
            return PlayMedia(hls_path(ref), BROWSER_HLS_MIME)
        if wants_hls(self.hass, item.target_media_player):
            return PlayMedia(hls_path(ref), HLS_MIME)
        return PlayMedia(stream_path(ref), TS_MIME)

    async def _async_resolve_recording(self, identifier: str) -> PlayMedia:
        name = identifier.removeprefix(RECORDING_PREFIX)
        if name in await self.hass.async_add_executor_job(self._recordings):
            media_dir, _ = media_root(self.hass)
            location = quote(f"{SUBFOLDER}/{name}")
            return PlayMedia(
                f"/media/{media_dir}/{location}",
                RECORDING_MIMES[PurePath(name).suffix],
            )
        raise Unresolvable(
            translation_domain=DOMAIN,
            translation_key="unknown_media",
            translation_placeholders={"identifier": identifier},
        )

    def _recordings(self) -> list[str]:
        """Finished recordings, newest first (a blocking look at the folder)."""
        try:
            _, root = media_root(self.hass)
            files = [
                path
                for path in (root / SUBFOLDER).iterdir()
                if path.suffix in RECORDING_MIMES
                and not path.name.startswith(".")
                and path.is_file()
            ]
        except (OSError, ServiceValidationError):
            return []
        running = {r.path for r in get_recordings(self.hass).running.values()}
        files.sort(key=lambda path: path.stat().st_mtime, reverse=True)
        return [path.name for path in files if path not in running]

    async def _async_browse_recordings(self) -> BrowseMediaSource:
        names = await self.hass.async_add_executor_job(self._recordings)
        children = [
            BrowseMediaSource(
                domain=DOMAIN,
                identifier=f"{RECORDING_PREFIX}{name}",
                media_class=MediaClass.VIDEO,
                media_content_type=RECORDING_MIMES[PurePath(name).suffix],
                title=PurePath(name).stem,
                can_play=True,
                can_expand=False,
            )
            for name in names
        ]
        folder = _directory(RECORDINGS, "Recordings", children)
        folder.children_media_class = MediaClass.VIDEO
        return folder

    def _channels(self) -> list[Channel]:
        return sorted(
            (channel for _, _, channel in iter_channels(self.hass)),
            key=lambda channel: channel.name.casefold(),
        )

    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        """Root: groups and ungrouped channels; a group: its channels."""
        channels = self._channels()
        identifier = item.identifier or ""
        if identifier == RECORDINGS:
            return await self._async_browse_recordings()
        if not identifier:
            groups = sorted({c.group for c in channels if c.group}, key=str.casefold)
            children = [
                _directory(f"{GROUP_PREFIX}{group}", group, []) for group in groups
            ]
            children += [_channel_item(c) for c in channels if not c.group]
            if await self.hass.async_add_executor_job(self._recordings):
                children.insert(0, _directory(RECORDINGS, "Recordings", []))
            return _directory("", self.name, children)
        if identifier.startswith(GROUP_PREFIX):
            group = identifier.removeprefix(GROUP_PREFIX)
            members = [_channel_item(c) for c in channels if c.group == group]
            if members:
                return _directory(identifier, group, members)
        raise BrowseError(
            translation_domain=DOMAIN,
            translation_key="unknown_media",
            translation_placeholders={"identifier": identifier},
        )

    async def async_search_media(
        self, item: MediaSourceItem, query: SearchMediaQuery
    ) -> SearchMedia:
        """Home Assistant's search (where it has one) answered by search()."""
        found = self.search(
            item.identifier or "",
            query.search_query,
            set(query.media_filter_classes or ()),
        )
        return compat.SearchMedia(result=found)

    def search(
        self, identifier: str, text: str, classes: Collection[MediaClass]
    ) -> list[BrowseMediaSource]:
        """Channels whose name, group or id holds every word of ``text``, and
        playing broadcasts that are no channel (by their id); under a group, its
        channels only. Groups match as folders, unless ``classes`` asks for media.
        """
        words = text.casefold().split()
        channels = self._channels()
        if identifier:
            # Only a group has something under it to search.
            in_group = identifier.startswith(GROUP_PREFIX)
            group = identifier.removeprefix(GROUP_PREFIX)
            channels = [c for c in channels if in_group and c.group == group]
            if not channels:
                raise BrowseError(
                    translation_domain=DOMAIN,
                    translation_key="unknown_media",
                    translation_placeholders={"identifier": identifier},
                )

        def matches(*texts: str | None) -> bool:
            haystack = " ".join(t for t in texts if t).casefold()
            return all(word in haystack for word in words)

        found: list[BrowseMediaSource] = []
        if not identifier and not classes:
            groups = sorted({c.group for c in channels if c.group}, key=str.casefold)
            found += [
                _directory(f"{GROUP_PREFIX}{group}", group, [])
                for group in groups
                if matches(group)
            ]
        if not classes or MediaClass.CHANNEL in classes:
            found += [
                _channel_item(c)
                for c in channels
                if matches(c.name, c.group, c.ref.value)
            ]
            if not identifier:
                found += [
                    _playable(target.ref, target.name, None)
                    for target in self._adhoc_broadcasts()
                    if matches(target.name, target.ref.value)
                ]
        return found[:MAX_SEARCH_RESULTS]

    def _adhoc_broadcasts(self) -> list[BroadcastTarget]:
        """Broadcasts playing now that no channel plays (started by id)."""
        hub = get_hub(self.hass)
        return [
            adhoc_target(infohash)
            for infohash, record in sorted(hub.broadcasts.items())
            if record.broadcaster.alive and hub.channel_for(record.broadcaster) is None
        ]
