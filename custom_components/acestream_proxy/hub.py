"""The domain-wide hub: one object joining the rooms of the streaming side.

- :mod:`.pool`: the engine entries loaded now, and which one takes a broadcast;
- :mod:`.registry`: every broadcast, by infohash: find, open, stop, what it plays;
- :mod:`.devices`: the devices and entities that follow channels and broadcasts;
- :mod:`.events`: broadcast events on the bus, viewer changes held back;
- :mod:`.updates`: entity refresh, rate-limited, and the stats tick.

The hub lives as long as the integration. Each broadcast event goes through
:meth:`StreamHub._on_event`, which tells each room in turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send

from .data import get_hub
from .devices import SIGNAL_ADHOC_MOVED, adhoc_target, async_adhoc_ended, channel_of
from .events import BusEvents
from .pool import RETRY_AFTER_LIMIT, CapacityError, EnginePool, NoEngineError
from .registry import BroadcastRecord, BroadcastRegistry
from .stream.broadcast import Broadcaster, BroadcastEvent, Viewer
from .updates import EntityUpdates

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigSubentry

    from .channel import Channel
    from .data import AceStreamConfigEntry
    from .devices import BroadcastTarget
    from .stream.engine import ContentRef
    from .stream.hls import HlsOutput

# What callers of the hub import from here besides the hub itself.
__all__ = [
    "RETRY_AFTER_LIMIT",
    "CapacityError",
    "NoEngineError",
    "StreamHub",
    "get_hub",
]


class StreamHub:
    """Owns the engine pool and every broadcast."""

    def __init__(self, hass: HomeAssistant) -> None:
        """Build the rooms; nothing runs until an engine is added."""
        self.hass = hass
        self.pool = EnginePool()
        self.registry = BroadcastRegistry(
            hass, self.pool, listener=self._on_event, started=self._started
        )
        self.events = BusEvents(hass, self.registry)
        self.updates = EntityUpdates(
            hass, self.pool, self.registry, self.events.viewers_changed
        )

    @property
    def engines(self) -> dict[str, AceStreamConfigEntry]:
        """The loaded engine entries, by entry id."""
        return self.pool.engines

    @property
    def broadcasts(self) -> dict[str, BroadcastRecord]:
        """Every broadcast, by infohash."""
        return self.registry.broadcasts

    @property
    def failures(self) -> dict[str, str]:
        """Why the last broadcast of an infohash failed, until it plays again."""
        return self.registry.failures

    # -- engines -------------------------------------------------------------------

    @callback
    def add_engine(self, entry: AceStreamConfigEntry) -> None:
        """Make a loaded engine entry available for broadcasts."""
        self.pool.add(entry)

    async def async_remove_engine(self, entry: AceStreamConfigEntry) -> None:
        """Take an engine out of the pool (its entry unloads or reloads).

        Its broadcasts move to another healthy engine with room, viewers kept, or
        end with ``stream_stopped``; starts waiting on it are cancelled.
        """
        self.pool.remove(entry.entry_id)
        await self.registry.async_leave(entry.entry_id)

    async def async_shutdown(self, _event: Event | None = None) -> None:
        """Home Assistant stops: stop every engine session we opened."""
        self.pool.engines.clear()
        await self.registry.async_close_all()
        self.updates.shutdown()

    @callback
    def broadcast_count(self, entry_id: str) -> int:
        """Broadcasts open on one engine."""
        return self.registry.broadcast_count(entry_id)

    @callback
    def viewer_count(self, entry_id: str) -> int:
        """Viewers of all broadcasts of one engine."""
        return self.registry.viewer_count(entry_id)

    @callback
    def request_update(self) -> None:
        """Refresh the entities soon (rate-limited)."""
        self.updates.request_update()

    # -- broadcasts ----------------------------------------------------------------

    def infohash_of(self, ref: ContentRef) -> str | None:
        """The infohash a ref names: itself, or what the engine told for a content id."""
        return self.registry.infohash_of(ref)

    def find(self, ref: ContentRef) -> Broadcaster | None:
        """The live broadcast a content id or infohash names, if any."""
        return self.registry.find(ref)

    def record(self, target: BroadcastTarget) -> BroadcastRecord | None:
        """The live broadcast a channel or ad-hoc target follows."""
        return self.registry.record(target)

    def failed(self, target: BroadcastTarget) -> str | None:
        """Why the target's last broadcast failed, until it plays again."""
        return self.registry.failed(target)

    def channel_for(
        self, broadcaster: Broadcaster
    ) -> tuple[ConfigSubentry, Channel] | None:
        """The configured channel a broadcast plays, if any."""
        found = channel_of(self.hass, self.registry, broadcaster)
        return (found[1], found[2]) if found else None

    async def async_open(self, ref: ContentRef) -> Broadcaster:
        """The live broadcast ``ref`` names, opened on an engine if needed
        (a recording reads it); raises like async_open_viewer."""
        return await self.registry.async_open(ref)

    async def async_open_viewer(self, ref: ContentRef) -> Viewer:
        """Join the broadcast ``ref`` names, opening it on an engine if needed.

        Raises NoEngineError, CapacityError, ViewerLimitError or EngineError.
        """
        return await self.registry.async_open_viewer(ref)

    async def async_open_hls(self, ref: ContentRef, client: str) -> HlsOutput:
        """The HLS output of the broadcast ``ref`` names, started if needed."""
        return await self.registry.async_open_hls(ref, client)

    def hls_for(self, ref: ContentRef) -> HlsOutput | None:
        """The running HLS output of a broadcast, if any."""
        return self.registry.hls_for(ref)

    async def async_stop(self, ref: ContentRef) -> bool:
        """Stop a broadcast now; False when none plays. A broadcast already
        closing counts: the caller waits for that close."""
        return await self.registry.async_stop(ref)

    # -- what the rooms hear -------------------------------------------------------

    @callback
    def _started(self) -> None:
        self.updates.start_ticking()
        self.updates.request_update()

    @callback
    def _on_event(self, broadcaster: Broadcaster, event: BroadcastEvent) -> None:
        item = self.registry.broadcasts.get(broadcaster.infohash)
        if item is None or item.broadcaster is not broadcaster:
            return
        if event is BroadcastEvent.FAILOVER:
            # Not item.entry_id: an engine leaving the pool re-homes the record
            # before the producer has moved.
            previous = broadcaster.previous_engine_id or item.entry_id
            item.entry_id = broadcaster.engine_id
            if item.adhoc_device_id is not None:
                async_dispatcher_send(
                    self.hass,
                    SIGNAL_ADHOC_MOVED,
                    adhoc_target(broadcaster.infohash),
                    previous,
                    item.entry_id,
                )
        elif event is BroadcastEvent.RESTARTING and (
            engine := self.pool.engines.get(item.entry_id)
        ):
            # A failing stream is news about the engine: check it now.
            self.hass.async_create_task(
                engine.runtime_data.coordinator.async_request_refresh(),
                eager_start=True,
            )
        self.events.tell(item, event)
        if self.registry.settle(item, event):
            if item.adhoc_device_id is not None:
                async_adhoc_ended(self.hass, item.adhoc_device_id)
            if not self.registry.broadcasts:
                self.updates.stop_ticking()
        self.updates.request_update()
