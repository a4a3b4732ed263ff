"""Broadcast events on Home Assistant's bus (device triggers offer the same types).

viewer_joined / viewer_left reach the bus (and the recorder) at most once per
broadcast per VIEWER_EVENT_HOLD seconds: an IPTV app that reconnects, or a crowd
joining, must not flood it. A change after a quiet spell is told at once; changes
within the hold are told together when it ends, as one event whose type is the net
direction and whose ``viewers`` is the exact count (no event if it came back to
where it was). The viewers sensors are never held back.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import HomeAssistant, callback

from .compat import async_get_device
from .const import EVENT_TYPE
from .devices import channel_of, channel_target, target_for
from .stream.broadcast import Broadcaster, BroadcastEvent
from .stream.engine import ContentKind

if TYPE_CHECKING:
    from .registry import BroadcastRecord, BroadcastRegistry

VIEWER_EVENT_HOLD: Final = 5.0
VIEWER_EVENTS: Final = frozenset(
    {BroadcastEvent.VIEWER_JOINED, BroadcastEvent.VIEWER_LEFT}
)
BUS_EVENTS: Final = frozenset(
    {
        BroadcastEvent.STARTED,
        BroadcastEvent.STOPPED,
        BroadcastEvent.FAILED,
        BroadcastEvent.RECOVERED,
        BroadcastEvent.FAILOVER,
        BroadcastEvent.VIEWER_JOINED,
        BroadcastEvent.VIEWER_LEFT,
    }
)


class BusEvents:
    """Tells the bus what the registry's broadcasts do."""

    def __init__(self, hass: HomeAssistant, registry: BroadcastRegistry) -> None:
        """Name broadcasts as ``registry`` knows them."""
        self.hass = hass
        self.registry = registry

    @callback
    def tell(self, item: BroadcastRecord, event: BroadcastEvent) -> None:
        """An event of a broadcast whose record is still in the registry."""
        if event in VIEWER_EVENTS:
            self.viewers_changed(item)
        elif event in BUS_EVENTS:
            if event in (BroadcastEvent.STOPPED, BroadcastEvent.FAILED):
                # What the hold kept back is told before the end.
                self._tell_viewers(item)
            self._fire(item.broadcaster, event)

    @callback
    def viewers_changed(self, item: BroadcastRecord) -> None:
        """The viewer count moved: tell it now, or when the hold ends."""
        if item.viewers_timer is not None:
            return  # the pending event will tell the count
        wait = item.viewers_told_at + VIEWER_EVENT_HOLD - time.monotonic()
        if wait <= 0:
            self._tell_viewers(item)
        else:
            item.viewers_timer = self.hass.loop.call_later(
                wait, self._tell_viewers, item
            )

    @callback
    def _tell_viewers(self, item: BroadcastRecord) -> None:
        if item.viewers_timer is not None:
            item.viewers_timer.cancel()
            item.viewers_timer = None
        count = item.broadcaster.viewer_count
        if count == item.viewers_told:
            return
        item.viewers_told_at = time.monotonic()
        joined = count > item.viewers_told
        item.viewers_told = count
        self._fire(
            item.broadcaster,
            BroadcastEvent.VIEWER_JOINED if joined else BroadcastEvent.VIEWER_LEFT,
        )

    def data(self, broadcaster: Broadcaster, kind: str) -> dict[str, Any]:
        """What every event about a broadcast carries (recordings' events too)."""
        target = target_for(self.hass, self.registry, broadcaster)
        return {
            "type": kind,
            "device_id": self._device_id(broadcaster),
            "content_id": self._content_id(broadcaster),
            "infohash": broadcaster.infohash,
            "channel": target.name if target.subentry_id else None,
            "viewers": broadcaster.viewer_count,
        }

    def _fire(self, broadcaster: Broadcaster, event: BroadcastEvent) -> None:
        data = self.data(broadcaster, event.value)
        if event is BroadcastEvent.FAILOVER:
            data["from_engine"] = self._engine_title(broadcaster.previous_engine_id)
            data["to_engine"] = self._engine_title(broadcaster.engine_id)
        self.hass.bus.async_fire(EVENT_TYPE, data)

    def _content_id(self, broadcaster: Broadcaster) -> str | None:
        """The content id of a broadcast, when known: what it was opened with,
        or a content id the engine resolved to its infohash."""
        if broadcaster.content.kind is ContentKind.CONTENT_ID:
            return broadcaster.content.value
        for ref, infohash in self.registry.aliases.items():
            if infohash == broadcaster.infohash and ref.kind is ContentKind.CONTENT_ID:
                return ref.value
        return None

    def _device_id(self, broadcaster: Broadcaster) -> str | None:
        """The device a broadcast's events name: its channel's, or its own."""
        if (found := channel_of(self.hass, self.registry, broadcaster)) is not None:
            entry, subentry, channel = found
            target = channel_target(subentry.subentry_id, channel)
            device = async_get_device(
                self.hass, target.device_identifier, entry.entry_id
            )
            return device.id if device else None
        item = self.registry.broadcasts.get(broadcaster.infohash)
        return item.adhoc_device_id if item else None

    def _engine_title(self, entry_id: str | None) -> str | None:
        entry = self.hass.config_entries.async_get_entry(entry_id) if entry_id else None
        return entry.title if entry else entry_id
