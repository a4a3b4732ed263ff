"""Domain-wide hub: the engines that are loaded and the broadcasts they serve.

Broadcasts are keyed by infohash across the whole pool, so a content id and the
infohash it resolves to share one engine session. The content id -> infohash map is
learned from the engine's getstream answer (the only place the engine tells it).

The hub lives as long as the integration and owns every broadcast task (starts,
producers, closes, HLS consumers): an engine entry that unloads or reloads does not
cancel them. It moves that engine's broadcasts to another healthy engine (a
failover, viewers kept) or closes them; Home Assistant stopping closes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import time
from typing import TYPE_CHECKING, Any, Final

from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util.hass_dict import HassKey

from .compat import async_get_device, via_engine
from .const import (
    CONF_HLS_SEGMENT,
    CONF_LINGER,
    CONF_MAX_BROADCASTS,
    CONF_MAX_VIEWERS,
    CONF_REPLAY_WINDOW,
    DEFAULT_HLS_SEGMENT,
    DEFAULT_LINGER,
    DEFAULT_MAX_BROADCASTS,
    DEFAULT_MAX_VIEWERS,
    DEFAULT_REPLAY_WINDOW,
    DOMAIN,
    EVENT_TYPE,
    LOGGER,
)
from .playlist import iter_channels
from .stream.broadcast import (
    BroadcastClosedError,
    BroadcastConfig,
    Broadcaster,
    BroadcastEvent,
    Viewer,
)
from .stream.engine import (
    ContentKind,
    ContentRef,
    EngineClient,
    EngineError,
    SessionStats,
)
from .stream.hls import HlsOutput

if TYPE_CHECKING:
    from homeassistant.config_entries import ConfigEntry, ConfigSubentry

    from .channel import Channel

if TYPE_CHECKING:
    from .data import AceStreamConfigEntry

HUB_KEY: HassKey[StreamHub] = HassKey(DOMAIN)

RETRY_AFTER_LIMIT = 30
RETRY_AFTER_UNREACHABLE = 15

SIGNAL_UPDATED: Final = f"{DOMAIN}_updated"
# Entities are refreshed at most this often (a 500-viewer broadcast must not
# flood the recorder), and this often while something plays (bitrate moves).
UPDATE_MIN_INTERVAL: Final = 2.0
TICK: Final = timedelta(seconds=5)
STATS_EVERY_TICKS: Final = 3  # engine stat_url every 15 s
# viewer_joined / viewer_left reach the bus (and the recorder) at most once per
# broadcast per this many seconds: an IPTV app that reconnects, or a crowd joining,
# must not flood it. A change after a quiet spell is told at once; changes within
# the hold are told together when it ends, as one event whose type is the net
# direction and whose ``viewers`` is the exact count (no event if it came back to
# where it was). The viewers sensors are never held back.
VIEWER_EVENT_HOLD: Final = 5.0
VIEWER_EVENTS: Final = frozenset(
    {BroadcastEvent.VIEWER_JOINED, BroadcastEvent.VIEWER_LEFT}
)
# Broadcast events on the bus (device triggers offer the same types).
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


class NoEngineError(Exception):
    """No engine entry is loaded."""


class CapacityError(Exception):
    """A limit is reached or no engine can take the broadcast now."""

    def __init__(self, message: str, retry_after: int = RETRY_AFTER_LIMIT) -> None:
        """Say what is full and when to retry."""
        super().__init__(message)
        self.retry_after = retry_after


def signal_channels_changed(entry_id: str) -> str:
    """Dispatcher signal: channels were added to this entry."""
    return f"{DOMAIN}_channels_changed_{entry_id}"


def signal_new_broadcast(entry_id: str) -> str:
    """Dispatcher signal: an ad-hoc broadcast on this engine needs entities."""
    return f"{DOMAIN}_new_broadcast_{entry_id}"


# Dispatcher signal: an ad-hoc broadcast moved to another engine entry
# (target, from entry id, to entry id); its device and entities follow it.
SIGNAL_ADHOC_MOVED: Final = f"{DOMAIN}_adhoc_moved"


def get_hub(hass: HomeAssistant) -> StreamHub:
    """The hub created in async_setup."""
    return hass.data[HUB_KEY]


@dataclass(slots=True)
class BroadcastRecord:
    """What the hub keeps about one broadcast."""

    broadcaster: Broadcaster
    entry_id: str
    engine_stats: SessionStats | None = None
    adhoc_device_id: str | None = None
    hls: HlsOutput | None = None
    # Viewer events (see VIEWER_EVENT_HOLD): the count last told, when, and the
    # timer that tells the changes held back since.
    viewers_told: int = 0
    viewers_told_at: float = -VIEWER_EVENT_HOLD
    viewers_timer: asyncio.TimerHandle | None = None
    # The engine's stat_url failed at the last poll (its sensors are unavailable).
    stats_failed: bool = False


@dataclass(frozen=True, slots=True)
class BroadcastTarget:
    """What a set of broadcast entities follows: a channel, or one ad-hoc infohash."""

    ref: ContentRef
    device_identifier: str
    name: str
    subentry_id: str | None = None


def channel_target(subentry_id: str, channel: Channel) -> BroadcastTarget:
    """The target of a configured channel."""
    return BroadcastTarget(
        channel.ref, f"channel_{subentry_id}", channel.name, subentry_id
    )


def adhoc_target(infohash: str) -> BroadcastTarget:
    """The target of a broadcast that is not a channel (while it plays)."""
    return BroadcastTarget(
        ContentRef(ContentKind.INFOHASH, infohash),
        f"broadcast_{infohash}",
        f"AceStream {infohash[:8]}",
    )


@dataclass
class StreamHub:
    """Owns the engine pool and every broadcast."""

    hass: HomeAssistant
    engines: dict[str, AceStreamConfigEntry] = field(default_factory=dict)
    broadcasts: dict[str, BroadcastRecord] = field(default_factory=dict)
    aliases: dict[ContentRef, str] = field(default_factory=dict)
    _starting: dict[ContentRef, tuple[str, asyncio.Task[Broadcaster]]] = field(
        default_factory=dict
    )
    _tasks: set[asyncio.Task[Any]] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)
    _tick_unsub: Callable[[], None] | None = None
    _ticks: int = 0
    _last_update: float = 0.0
    _pending_update: asyncio.TimerHandle | None = None

    # -- engines -------------------------------------------------------------------

    @callback
    def add_engine(self, entry: AceStreamConfigEntry) -> None:
        """Make a loaded engine entry available for broadcasts."""
        self.engines[entry.entry_id] = entry

    async def async_remove_engine(self, entry: AceStreamConfigEntry) -> None:
        """Take an engine out of the pool (its entry unloads or reloads).

        Its broadcasts move to another healthy engine with room, viewers kept, or
        end with ``stream_stopped``; starts waiting on it are cancelled.
        """
        self.engines.pop(entry.entry_id, None)
        for ref, (entry_id, task) in list(self._starting.items()):
            if entry_id == entry.entry_id:
                task.cancel()
                self._starting.pop(ref, None)
        closes = []
        for item in list(self.broadcasts.values()):
            if item.entry_id != entry.entry_id:
                continue
            broadcaster = item.broadcaster
            target = None if broadcaster.closed else self._failover_target(broadcaster)
            if target is None:
                closes.append(broadcaster.async_close())
            else:
                # Counted on its new engine at once, so a second removal finds it.
                item.entry_id = target[0]
                broadcaster.move_to(*target)
        await asyncio.gather(*closes)

    async def async_shutdown(self, _event: Event | None = None) -> None:
        """Home Assistant stops: stop every engine session we opened."""
        self.engines.clear()
        for _, task in self._starting.values():
            task.cancel()
        self._starting.clear()
        await asyncio.gather(
            *(item.broadcaster.async_close() for item in list(self.broadcasts.values()))
        )
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._stop_ticking()
        if self._pending_update is not None:
            self._pending_update.cancel()
            self._pending_update = None

    def _spawn[T](self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A task of the hub: outlives config entries, cancelled at shutdown."""
        task = self.hass.async_create_background_task(coro, name)
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    @callback
    def broadcast_count(self, entry_id: str) -> int:
        """Broadcasts open on one engine."""
        return sum(
            1
            for item in self.broadcasts.values()
            if item.entry_id == entry_id and not item.broadcaster.closed
        )

    @callback
    def viewer_count(self, entry_id: str) -> int:
        """Viewers of all broadcasts of one engine."""
        return sum(
            item.broadcaster.viewer_count
            for item in self.broadcasts.values()
            if item.entry_id == entry_id
        )

    @callback
    def request_update(self) -> None:
        """Refresh the entities soon, at most every UPDATE_MIN_INTERVAL."""
        if self._pending_update is not None:
            return
        wait = self._last_update + UPDATE_MIN_INTERVAL - time.monotonic()
        if wait <= 0:
            self._dispatch_update()
        else:
            self._pending_update = self.hass.loop.call_later(
                wait, self._dispatch_update
            )

    @callback
    def _dispatch_update(self) -> None:
        self._pending_update = None
        self._last_update = time.monotonic()
        async_dispatcher_send(self.hass, SIGNAL_UPDATED)

    def _start_ticking(self) -> None:
        if self._tick_unsub is None:
            self._tick_unsub = async_track_time_interval(
                self.hass, self._async_tick, TICK, name=f"{DOMAIN} broadcast stats"
            )

    def _stop_ticking(self) -> None:
        if self._tick_unsub is not None:
            self._tick_unsub()
            self._tick_unsub = None

    async def _async_tick(self, _now: datetime) -> None:
        """Bitrate moves all the time; peers and speed come from the engine."""
        self._ticks += 1
        if (self._ticks - 1) % STATS_EVERY_TICKS == 0:
            await asyncio.gather(
                *(
                    self._async_poll_stats(item)
                    for item in list(self.broadcasts.values())
                )
            )
        for item in list(self.broadcasts.values()):
            # HLS clients come and go without a connection to follow: their count
            # (part of viewer_count) is checked here, and told like the others.
            if item.broadcaster.viewer_count != item.viewers_told:
                self._viewers_changed(item)
        self.request_update()

    async def _async_poll_stats(self, item: BroadcastRecord) -> None:
        session = item.broadcaster.session
        entry = self.engines.get(item.entry_id)
        if session is None or entry is None:
            return
        try:
            # skip_player_activity: polling must never keep a session alive.
            item.engine_stats = await entry.runtime_data.client.get_stats(session)
        except EngineError as err:
            LOGGER.debug("Stats of %s unavailable: %s", item.broadcaster.name, err)
            item.engine_stats = None
            item.stats_failed = True
        else:
            item.stats_failed = False

    def _select_engine(self, exclude: str | None = None) -> AceStreamConfigEntry:
        if not self.engines:
            raise NoEngineError("no AceStream engine is configured and loaded")
        healthy = [
            entry
            for entry in self.engines.values()
            if entry.runtime_data.coordinator.last_update_success
            and entry.entry_id != exclude
        ]
        if not healthy:
            raise CapacityError(
                "no AceStream engine is reachable", RETRY_AFTER_UNREACHABLE
            )

        def load(entry: AceStreamConfigEntry) -> tuple[int, int]:
            starting = sum(
                1 for eid, _ in self._starting.values() if eid == entry.entry_id
            )
            return (
                self.broadcast_count(entry.entry_id) + starting,
                self.viewer_count(entry.entry_id),
            )

        for entry in sorted(healthy, key=load):
            limit = entry.options.get(CONF_MAX_BROADCASTS, DEFAULT_MAX_BROADCASTS)
            if load(entry)[0] < limit:
                return entry
        raise CapacityError("the maximum number of concurrent broadcasts is reached")

    # -- broadcasts ----------------------------------------------------------------

    def infohash_of(self, ref: ContentRef) -> str | None:
        """The infohash a ref names: itself, or what the engine told for a content id."""
        return ref.value if ref.kind is ContentKind.INFOHASH else self.aliases.get(ref)

    def find(self, ref: ContentRef) -> Broadcaster | None:
        """The live broadcast a content id or infohash names, if any."""
        infohash = self.infohash_of(ref)
        if infohash is None:
            return None
        item = self.broadcasts.get(infohash)
        if item is None or not item.broadcaster.alive:
            return None
        return item.broadcaster

    async def async_open_viewer(self, ref: ContentRef) -> Viewer:
        """Join the broadcast ``ref`` names, opening it on an engine if needed.

        Raises NoEngineError, CapacityError, ViewerLimitError or EngineError.
        """
        for _ in range(3):
            broadcaster = self.find(ref)
            if broadcaster is None:
                broadcaster = await self._async_wait_start(ref)
            try:
                return broadcaster.join()
            except BroadcastClosedError:
                continue
        raise CapacityError("the broadcast is restarting", RETRY_AFTER_UNREACHABLE)

    async def async_open_hls(self, ref: ContentRef, client: str) -> HlsOutput:
        """The HLS output of the broadcast ``ref`` names, started if needed.

        Raises like async_open_viewer.
        """
        for _ in range(3):
            broadcaster = self.find(ref)
            if broadcaster is None:
                broadcaster = await self._async_wait_start(ref)
            item = self.broadcasts.get(broadcaster.infohash)
            if item is None or item.broadcaster is not broadcaster:
                continue
            if item.hls is None:
                entry = self.engines.get(item.entry_id)
                options = entry.options if entry else {}
                item.hls = HlsOutput(
                    broadcaster,
                    target_duration=float(
                        options.get(CONF_HLS_SEGMENT, DEFAULT_HLS_SEGMENT)
                    ),
                )
            try:
                item.hls.touch(client)
            except BroadcastClosedError:
                continue
            return item.hls
        raise CapacityError("the broadcast is restarting", RETRY_AFTER_UNREACHABLE)

    def hls_for(self, ref: ContentRef) -> HlsOutput | None:
        """The running HLS output of a broadcast, if any."""
        broadcaster = self.find(ref)
        if broadcaster is None:
            return None
        return self.broadcasts[broadcaster.infohash].hls

    async def _async_wait_start(self, ref: ContentRef) -> Broadcaster:
        starting = self._starting.get(ref)
        if starting is None:
            entry = self._select_engine()
            task = self._spawn(
                self._async_start(entry, ref), f"{DOMAIN} start {ref.value}"
            )
            starting = (entry.entry_id, task)
            self._starting[ref] = starting
            task.add_done_callback(lambda _: self._starting.pop(ref, None))
        task = starting[1]
        try:
            # Shielded: one viewer giving up must not cancel the start for others.
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if task.cancelled() and not (current and current.cancelling()):
                raise CapacityError(
                    "the engine was unloaded", RETRY_AFTER_UNREACHABLE
                ) from None
            raise

    async def _async_start(
        self, entry: AceStreamConfigEntry, ref: ContentRef
    ) -> Broadcaster:
        config = self._config_for(entry)
        client = entry.runtime_data.client
        while True:
            # A broadcast of this infohash still closing must finish stopping its
            # engine session first: a stop sent after our getstream could end our
            # new reader. Its record leaves the hub when the close is done.
            known = self.infohash_of(ref)
            old = self.broadcasts.get(known) if known is not None else None
            if old is not None and old.broadcaster.closed:
                await old.broadcaster.async_close()
            session = await client.start_session(
                ref, start_timeout=config.getstream_timeout
            )
            self.aliases[ref] = session.infohash
            current = self.broadcasts.get(session.infohash)
            if current is None:
                break
            if current.broadcaster.closed:
                # It began closing while the engine answered (or its infohash was
                # not known before): its stop may end the session we just got.
                await current.broadcaster.async_close()
                continue
            if (
                ref.kind is ContentKind.CONTENT_ID
                and current.broadcaster.content.kind is ContentKind.INFOHASH
            ):
                # Opened by infohash: with the content id it can reopen on an
                # engine that lacks the descriptor (restarted, or a failover).
                current.broadcaster.content = ref
            if current.entry_id == entry.entry_id:
                current.broadcaster.adopt(session)
            else:
                # Same broadcast already served by another engine: keep that one.
                try:
                    await client.stop_session(session)
                except EngineError as err:
                    LOGGER.debug("Stopping a duplicate session failed: %s", err)
            return current.broadcaster

        broadcaster = Broadcaster(
            client=client,
            session=session,
            content=ref,
            config=config,
            spawn=self._spawn,
            listener=self._on_event,
            engine_id=entry.entry_id,
            failover=self._failover_target,
        )
        item = BroadcastRecord(broadcaster, entry.entry_id)
        self.broadcasts[session.infohash] = item
        broadcaster.name = self.target_for(broadcaster).name
        if self.channel_for(broadcaster) is None:
            target = adhoc_target(session.infohash)
            device = dr.async_get(self.hass).async_get_or_create(
                config_entry_id=entry.entry_id,
                **via_engine(
                    self.hass,
                    dr.DeviceInfo(
                        identifiers={(DOMAIN, target.device_identifier)},
                        name=target.name,
                        manufacturer="AceStream",
                        model="Broadcast",
                    ),
                    entry.entry_id,
                ),
            )
            item.adhoc_device_id = device.id
            async_dispatcher_send(
                self.hass, signal_new_broadcast(entry.entry_id), target
            )
        broadcaster.start()
        self._start_ticking()
        self.request_update()
        return broadcaster

    def _failover_target(
        self, broadcaster: Broadcaster
    ) -> tuple[str, EngineClient] | None:
        """Another healthy engine with room for the broadcast, if any."""
        try:
            entry = self._select_engine(exclude=broadcaster.engine_id)
        except (NoEngineError, CapacityError):
            return None
        return entry.entry_id, entry.runtime_data.client

    @staticmethod
    def _config_for(entry: AceStreamConfigEntry) -> BroadcastConfig:
        options = entry.options
        return BroadcastConfig(
            linger=float(options.get(CONF_LINGER, DEFAULT_LINGER)),
            replay_window=float(options.get(CONF_REPLAY_WINDOW, DEFAULT_REPLAY_WINDOW)),
            max_viewers=int(options.get(CONF_MAX_VIEWERS, DEFAULT_MAX_VIEWERS)),
        )

    # -- what Home Assistant sees --------------------------------------------------

    def failed(self, target: BroadcastTarget) -> str | None:
        """Why the target's last broadcast failed, until it plays again."""
        infohash = self.infohash_of(target.ref)
        return self.failures.get(infohash) if infohash else None

    async def async_stop(self, ref: ContentRef) -> bool:
        """Stop a broadcast now: viewers end, the engine session stops.

        A broadcast already closing counts: the caller waits for that close.
        """
        infohash = self.infohash_of(ref)
        item = self.broadcasts.get(infohash) if infohash is not None else None
        if item is None:
            return False
        await item.broadcaster.async_close()
        return True

    def record(self, target: BroadcastTarget) -> BroadcastRecord | None:
        """The live broadcast a channel or ad-hoc target follows."""
        broadcaster = self.find(target.ref)
        return self.broadcasts[broadcaster.infohash] if broadcaster else None

    def content_id_of(self, broadcaster: Broadcaster) -> str | None:
        """The content id of a broadcast, when known."""
        if broadcaster.content.kind is ContentKind.CONTENT_ID:
            return broadcaster.content.value
        for ref, infohash in self.aliases.items():
            if infohash == broadcaster.infohash and ref.kind is ContentKind.CONTENT_ID:
                return ref.value
        return None

    def channel_for(
        self, broadcaster: Broadcaster
    ) -> tuple[ConfigSubentry, Channel] | None:
        """The configured channel a broadcast plays, if any."""
        found = self._channel_of(broadcaster)
        return (found[1], found[2]) if found else None

    def _channel_of(
        self, broadcaster: Broadcaster
    ) -> tuple[ConfigEntry, ConfigSubentry, Channel] | None:
        for entry, subentry, channel in iter_channels(self.hass):
            if (
                channel.ref == broadcaster.content
                or self.infohash_of(channel.ref) == broadcaster.infohash
            ):
                return entry, subentry, channel
        return None

    def target_for(self, broadcaster: Broadcaster) -> BroadcastTarget:
        """The channel target of a broadcast, or its ad-hoc one."""
        found = self.channel_for(broadcaster)
        if found is not None:
            return channel_target(found[0].subentry_id, found[1])
        return adhoc_target(broadcaster.infohash)

    def _device_id(self, broadcaster: Broadcaster) -> str | None:
        """The device a broadcast's events name: its channel's, or its own."""
        if (found := self._channel_of(broadcaster)) is not None:
            entry, subentry, channel = found
            target = channel_target(subentry.subentry_id, channel)
            device = async_get_device(
                self.hass, target.device_identifier, entry.entry_id
            )
            return device.id if device else None
        item = self.broadcasts.get(broadcaster.infohash)
        return item.adhoc_device_id if item else None

    def _fire(self, broadcaster: Broadcaster, event: BroadcastEvent) -> None:
        target = self.target_for(broadcaster)
        data: dict[str, Any] = {
            "type": event.value,
            "device_id": self._device_id(broadcaster),
            "content_id": self.content_id_of(broadcaster),
            "infohash": broadcaster.infohash,
            "channel": target.name if target.subentry_id else None,
            "viewers": broadcaster.viewer_count,
        }
        if event is BroadcastEvent.FAILOVER:
            data["from_engine"] = self._engine_title(broadcaster.previous_engine_id)
            data["to_engine"] = self._engine_title(broadcaster.engine_id)
        self.hass.bus.async_fire(EVENT_TYPE, data)

    def _viewers_changed(self, item: BroadcastRecord) -> None:
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

    def _engine_title(self, entry_id: str | None) -> str | None:
        entry = self.hass.config_entries.async_get_entry(entry_id) if entry_id else None
        return entry.title if entry else entry_id

    @callback
    def _on_event(self, broadcaster: Broadcaster, event: BroadcastEvent) -> None:
        item = self.broadcasts.get(broadcaster.infohash)
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
            engine := self.engines.get(item.entry_id)
        ):
            # A failing stream is news about the engine: check it now.
            self.hass.async_create_task(
                engine.runtime_data.coordinator.async_request_refresh(),
                eager_start=True,
            )
        if event in VIEWER_EVENTS:
            self._viewers_changed(item)
        elif event in BUS_EVENTS:
            if event in (BroadcastEvent.STOPPED, BroadcastEvent.FAILED):
                # What the hold kept back is told before the end.
                self._tell_viewers(item)
            self._fire(broadcaster, event)
        if event is BroadcastEvent.FAILED:
            self.failures[broadcaster.infohash] = broadcaster.failure or "failed"
        elif event is BroadcastEvent.STARTED:
            self.failures.pop(broadcaster.infohash, None)
        if event in (BroadcastEvent.STOPPED, BroadcastEvent.FAILED):
            del self.broadcasts[broadcaster.infohash]
            if item.adhoc_device_id is not None:
                dr.async_get(self.hass).async_remove_device(item.adhoc_device_id)
            if not self.broadcasts:
                self._stop_ticking()
        self.request_update()
