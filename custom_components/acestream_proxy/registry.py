"""The registry of broadcasts: find one, open one, stop one, and what each plays.

Broadcasts are keyed by infohash across the whole pool, so a content id and the
infohash it resolves to share one engine session. The content id -> infohash map is
learned from the engine's getstream answer (the only place the engine tells it).

The registry lives as long as the integration and owns every broadcast task
(starts, producers, closes, HLS consumers): an engine entry that unloads or reloads
does not cancel them. An engine leaving the pool moves its broadcasts to another
healthy engine (a failover, viewers kept) or closes them; Home Assistant stopping
closes them all.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback

from .const import DOMAIN, LOGGER
from .devices import async_adhoc_started, channel_of, target_for
from .pool import (
    RETRY_AFTER_UNREACHABLE,
    CapacityError,
    EnginePool,
    broadcast_config,
    hls_segment,
)
from .stream.broadcast import (
    BroadcastClosedError,
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
    from .data import AceStreamConfigEntry
    from .devices import BroadcastTarget

type Listener = Callable[[Broadcaster, BroadcastEvent], None]


@dataclass(slots=True)
class BroadcastRecord:
    """What the hub keeps about one broadcast."""

    broadcaster: Broadcaster
    entry_id: str
    engine_stats: SessionStats | None = None
    adhoc_device_id: str | None = None
    hls: HlsOutput | None = None
    # Viewer events (see events.VIEWER_EVENT_HOLD): the count last told, when
    # (never, at first), and the timer that tells the changes held back since.
    viewers_told: int = 0
    viewers_told_at: float = float("-inf")
    viewers_timer: asyncio.TimerHandle | None = None
    # The engine's stat_url failed at the last poll (its sensors are unavailable).
    stats_failed: bool = False


def _read_failure(task: asyncio.Task[Broadcaster]) -> None:
    """Read a start's error: when every viewer that asked gave up first, nobody
    else does, and asyncio would report it as an error never retrieved."""
    if not task.cancelled() and (err := task.exception()) is not None:
        LOGGER.debug("%s failed: %s", task.get_name(), err)


class BroadcastRegistry:
    """Every broadcast, by infohash, and the starts under way."""

    def __init__(
        self,
        hass: HomeAssistant,
        pool: EnginePool,
        *,
        listener: Listener,
        started: Callable[[], None],
    ) -> None:
        """Open broadcasts on ``pool``'s engines; ``listener`` hears their events
        and ``started`` is called whenever a new one starts."""
        self.hass = hass
        self.pool = pool
        self._listener = listener
        self._started = started
        self.broadcasts: dict[str, BroadcastRecord] = {}
        self.aliases: dict[ContentRef, str] = {}
        # Why the last broadcast of an infohash failed, until it plays again.
        self.failures: dict[str, str] = {}
        # Starts under way, with the engine entry each was sent to.
        self.starting: dict[ContentRef, tuple[str, asyncio.Task[Broadcaster]]] = {}
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn[T](self, coro: Coroutine[Any, Any, T], name: str) -> asyncio.Task[T]:
        """A task of the hub: outlives config entries, cancelled at shutdown."""
        task = self.hass.async_create_background_task(coro, name)
        if not task.done():
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return task

    async def async_leave(self, entry_id: str) -> None:
        """An engine left the pool: its starts are cancelled, its broadcasts move
        to another healthy engine with room, viewers kept, or end with
        ``stream_stopped``."""
        for ref, (starting_on, task) in list(self.starting.items()):
            if starting_on == entry_id:
                task.cancel()
                self.starting.pop(ref, None)
        closes = []
        for item in list(self.broadcasts.values()):
            if item.entry_id != entry_id:
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

    async def async_close_all(self) -> None:
        """Cancel every start, close every broadcast, then end every task."""
        for _, task in self.starting.values():
            task.cancel()
        self.starting.clear()
        await asyncio.gather(
            *(item.broadcaster.async_close() for item in list(self.broadcasts.values()))
        )
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- counting ------------------------------------------------------------------

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

    def _load(self, entry_id: str) -> tuple[int, int]:
        """Broadcasts open or starting on one engine, then its viewers."""
        starting = sum(1 for eid, _ in self.starting.values() if eid == entry_id)
        return (
            self.broadcast_count(entry_id) + starting,
            self.viewer_count(entry_id),
        )

    # -- finding -------------------------------------------------------------------

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

    def record(self, target: BroadcastTarget) -> BroadcastRecord | None:
        """The live broadcast a channel or ad-hoc target follows."""
        broadcaster = self.find(target.ref)
        return self.broadcasts[broadcaster.infohash] if broadcaster else None

    def failed(self, target: BroadcastTarget) -> str | None:
        """Why the target's last broadcast failed, until it plays again."""
        infohash = self.infohash_of(target.ref)
        return self.failures.get(infohash) if infohash else None

    def hls_for(self, ref: ContentRef) -> HlsOutput | None:
        """The running HLS output of a broadcast, if any."""
        broadcaster = self.find(ref)
        if broadcaster is None:
            return None
        return self.broadcasts[broadcaster.infohash].hls

    # -- opening and stopping ------------------------------------------------------

    async def async_open(self, ref: ContentRef) -> Broadcaster:
        """The live broadcast ``ref`` names, opened on an engine if needed.

        Raises like async_open_viewer.
        """
        return self.find(ref) or await self._async_wait_start(ref)

    async def async_open_viewer(self, ref: ContentRef) -> Viewer:
        """Join the broadcast ``ref`` names, opening it on an engine if needed.

        Raises NoEngineError, CapacityError, ViewerLimitError or EngineError.
        """
        return await self._async_use(ref, lambda broadcaster: broadcaster.join())

    async def async_open_hls(self, ref: ContentRef, client: str) -> HlsOutput:
        """The HLS output of the broadcast ``ref`` names, started if needed.

        Raises like async_open_viewer.
        """

        def hls(broadcaster: Broadcaster) -> HlsOutput | None:
            item = self.broadcasts.get(broadcaster.infohash)
            if item is None or item.broadcaster is not broadcaster:
                return None
            if item.hls is None:
                entry = self.pool.engines.get(item.entry_id)
                item.hls = HlsOutput(
                    broadcaster,
                    target_duration=hls_segment(entry.options if entry else {}),
                )
            item.hls.touch(client)
            return item.hls

        return await self._async_use(ref, hls)

    async def _async_use[T](
        self, ref: ContentRef, use: Callable[[Broadcaster], T | None]
    ) -> T:
        """What ``use`` makes of the live broadcast ``ref`` names, opened if needed;
        tried again while the broadcast ends under it (None, or closed)."""
        for _ in range(3):
            broadcaster = self.find(ref)
            if broadcaster is None:
                broadcaster = await self._async_wait_start(ref)
            try:
                result = use(broadcaster)
            except BroadcastClosedError:
                continue
            if result is not None:
                return result
        raise CapacityError("the broadcast is restarting", RETRY_AFTER_UNREACHABLE)

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

    @callback
    def settle(self, item: BroadcastRecord, event: BroadcastEvent) -> bool:
        """Note what an event of a broadcast ends or clears; True when it ended and
        its record is gone."""
        infohash = item.broadcaster.infohash
        if event is BroadcastEvent.FAILED:
            self.failures[infohash] = item.broadcaster.failure or "failed"
        elif event is BroadcastEvent.STARTED:
            self.failures.pop(infohash, None)
        if event in (BroadcastEvent.STOPPED, BroadcastEvent.FAILED):
            del self.broadcasts[infohash]
            return True
        return False

    async def _async_wait_start(self, ref: ContentRef) -> Broadcaster:
        starting = self.starting.get(ref)
        if starting is None:
            entry = self.pool.select(self._load)
            task = self.spawn(
                self._async_start(entry, ref), f"{DOMAIN} start {ref.value}"
            )
            starting = (entry.entry_id, task)
            self.starting[ref] = starting
            task.add_done_callback(lambda _: self.starting.pop(ref, None))
            task.add_done_callback(_read_failure)
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
        config = broadcast_config(entry)
        client = entry.runtime_data.client
        while True:
            # A broadcast of this infohash still closing must finish stopping its
            # engine session first: a stop sent after our getstream could end our
            # new reader. Its record leaves the registry when the close is done.
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
            spawn=self.spawn,
            listener=self._listener,
            engine_id=entry.entry_id,
            failover=self._failover_target,
        )
        item = BroadcastRecord(broadcaster, entry.entry_id)
        self.broadcasts[session.infohash] = item
        broadcaster.name = target_for(self.hass, self, broadcaster).name
        if channel_of(self.hass, self, broadcaster) is None:
            item.adhoc_device_id = async_adhoc_started(
                self.hass, entry.entry_id, session.infohash
            )
        broadcaster.start()
        self._started()
        return broadcaster

    def _failover_target(
        self, broadcaster: Broadcaster
    ) -> tuple[str, EngineClient] | None:
        return self.pool.failover_target(broadcaster, self._load)
