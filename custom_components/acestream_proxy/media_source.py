"""Media browser: the channels, grouped, each playable on any media player."""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.components.media_player.const import MediaClass
from homeassistant.components.media_player.errors import BrowseError
from homeassistant.components.media_source import (
    BrowseMediaSource,
    MediaSource,
    MediaSourceItem,
    PlayMedia,
    Unresolvable,
)

from .const import DOMAIN
from .playlist import hls_path, iter_channels, stream_path, wants_hls
from .stream.engine import ContentKind, ContentRef

if TYPE_CHECKING:
    from homeassistant.core import HomeAssistant

    from .channel import Channel

TS_MIME = "video/mp2t"
HLS_MIME = "application/vnd.apple.mpegurl"
GROUP_PREFIX = "group/"
CHANNEL_PREFIX = "channel/"


async def async_get_media_source(hass: HomeAssistant) -> AceStreamMediaSource:
    """The integration's media source."""
    return AceStreamMediaSource(hass)


def _channel_item(channel: Channel) -> BrowseMediaSource:
    return BrowseMediaSource(
        domain=DOMAIN,
        identifier=f"{CHANNEL_PREFIX}{channel.ref.kind.value}/{channel.ref.value}",
        media_class=MediaClass.CHANNEL,
        media_content_type=TS_MIME,
        title=channel.name,
        can_play=True,
        can_expand=False,
        thumbnail=channel.logo,
    )


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
    )


class AceStreamMediaSource(MediaSource):
    """Browse and resolve AceStream channels."""

    name = "AceStream"

    def __init__(self, hass: HomeAssistant) -> None:
        """Bind to hass."""
        super().__init__(DOMAIN)
        self.hass = hass

    async def async_resolve_media(self, item: MediaSourceItem) -> PlayMedia:
        """A relative URL (the player signs it): HLS for Cast and browsers."""
        kind, _, value = item.identifier.removeprefix(CHANNEL_PREFIX).partition("/")
        try:
            ref = ContentRef.parse(ContentKind(kind), value)
        except ValueError as err:
            raise Unresolvable(
                translation_domain=DOMAIN,
                translation_key="unknown_media",
                translation_placeholders={"identifier": item.identifier},
            ) from err
        if wants_hls(self.hass, item.target_media_player):
            return PlayMedia(hls_path(ref), HLS_MIME)
        return PlayMedia(stream_path(ref), TS_MIME)

    async def async_browse_media(self, item: MediaSourceItem) -> BrowseMediaSource:
        """Root: groups and ungrouped channels; a group: its channels."""
        channels = sorted(
            (channel for _, _, channel in iter_channels(self.hass)),
            key=lambda channel: channel.name.casefold(),
        )
        identifier = item.identifier or ""
        if not identifier:
            groups = sorted({c.group for c in channels if c.group}, key=str.casefold)
            children = [
                _directory(f"{GROUP_PREFIX}{group}", group, []) for group in groups
            ]
            children += [_channel_item(c) for c in channels if not c.group]
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
