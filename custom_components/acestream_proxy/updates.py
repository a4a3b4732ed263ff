"""Entity refresh: pushes to the entities, rate-limited, and a tick while
something plays (bitrate moves all the time; peers and speed come from the
engine's stat_url)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
import time
from typing import TYPE_CHECKING, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send
from homeassistant.helpers.event import async_track_time_interval

from .const import DOMAIN, LOGGER
from .stream.engine import EngineError

if TYPE_CHECKING:
    from .pool import EnginePool
    from .registry import BroadcastRecord, BroadcastRegistry

SIGNAL_UPDATED: Final = f"{DOMAIN}_updated"
# Entities are refreshed at most this often (a 500-viewer broadcast must not
# flood the recorder), and this often while something plays (bitrate moves).
UPDATE_MIN_INTERVAL: Final = 2.0
TICK: Final = timedelta(seconds=5)
STATS_EVERY_TICKS: Final = 3  # engine stat_url every 15 s


class EntityUpdates:
    """When the entities of engines and broadcasts hear from the hub."""

    def __init__(
        self,
        hass: HomeAssistant,
        pool: EnginePool,
        registry: BroadcastRegistry,
        viewers_changed: Callable[[BroadcastRecord], None],
    ) -> None:
        """Poll ``registry``'s broadcasts on ``pool``'s engines; tell counts that
        moved without a connection to follow (HLS clients) to ``viewers_changed``."""
        self.hass = hass
        self.pool = pool
        self.registry = registry
        self._viewers_changed = viewers_changed
        self._tick_unsub: Callable[[], None] | None = None
        self._ticks = 0
        self._last_update = 0.0
        self._pending_update: asyncio.TimerHandle | None = None

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

    def start_ticking(self) -> None:
        """Something plays: tick until nothing does."""
        if self._tick_unsub is None:
            self._tick_unsub = async_track_time_interval(
                self.hass, self._async_tick, TICK, name=f"{DOMAIN} broadcast stats"
            )

    def stop_ticking(self) -> None:
        """Nothing plays any more."""
        if self._tick_unsub is not None:
            self._tick_unsub()
            self._tick_unsub = None

    def shutdown(self) -> None:
        """No tick and no pending refresh is left."""
        self.stop_ticking()
        if self._pending_update is not None:
            self._pending_update.cancel()
            self._pending_update = None

    async def _async_tick(self, _now: datetime) -> None:
        self._ticks += 1
        broadcasts = self.registry.broadcasts
        if (self._ticks - 1) % STATS_EVERY_TICKS == 0:
            await asyncio.gather(
                *(self._async_poll_stats(item) for item in list(broadcasts.values()))
            )
        for item in list(broadcasts.values()):
            # HLS clients come and go without a connection to follow: their count
            # (part of viewer_count) is checked here, and told like the others.
            if item.broadcaster.viewer_count != item.viewers_told:
                self._viewers_changed(item)
        self.request_update()

    async def _async_poll_stats(self, item: BroadcastRecord) -> None:
        session = item.broadcaster.session
        entry = self.pool.engines.get(item.entry_id)
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
