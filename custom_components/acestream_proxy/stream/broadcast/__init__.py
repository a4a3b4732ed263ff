"""One engine session per broadcast, shared with any number of viewers.

No Home Assistant imports. A broadcast is three rooms joined in :class:`Broadcaster`:

- :mod:`.lifecycle`: the phase table (the single source of truth of the life
  cycle), outages, give-up and back-off, closing;
- :mod:`.producer`: one task reads the engine once, reopens it, fails over to
  another engine and detects bytes that are not MPEG-TS, appending to a shared ring;
  its work per chunk does not depend on the number of viewers;
- :mod:`.fanout`: the viewers, each writing from its own cursor at its own pace (a
  slow viewer only delays itself), keep-alive and the write watchdog.

There are no locks.
"""

from __future__ import annotations

from ..engine import ContentRef, StreamSession
from .config import (
    BroadcastConfig,
    EngineApi,
    Failover,
    Listener,
    Spawn,
)
from .fanout import JOIN_GRACE, KEEPALIVE, EndReason, FanOut, Viewer, ViewerLimitError
from .ingest import NOT_TS_REASON
from .lifecycle import (
    OPEN_PHASES,
    BroadcastClosedError,
    BroadcastEvent,
    BroadcastState,
    LifeCycle,
    Outage,
    Phase,
)
from .producer import Producer

__all__ = [
    "KEEPALIVE",
    "NOT_TS_REASON",
    "OPEN_PHASES",
    "BroadcastClosedError",
    "BroadcastConfig",
    "BroadcastEvent",
    "BroadcastState",
    "Broadcaster",
    "EndReason",
    "EngineApi",
    "LifeCycle",
    "Outage",
    "Phase",
    "Viewer",
    "ViewerLimitError",
]


class Broadcaster(Producer, FanOut):
    """A broadcast: one engine session, one producer, many viewers."""

    def __init__(
        self,
        *,
        client: EngineApi,
        session: StreamSession,
        content: ContentRef,
        config: BroadcastConfig,
        spawn: Spawn,
        listener: Listener,
        name: str | None = None,
        engine_id: str = "",
        failover: Failover | None = None,
    ) -> None:
        """Prepare a broadcast on an already opened engine session."""
        self.config = config
        self.name = name or content.value
        self.spawn = spawn
        self._init_lifecycle(listener)
        self._init_fanout()
        self._init_producer(client, session, content, engine_id, failover)

    def start(self) -> None:
        """Start the producer; linger until the first viewer joins."""
        # The viewer that asked for the broadcast joins a few loop turns later; with
        # linger 0 the timer must not beat it.
        self._arm_linger(max(self.config.linger, JOIN_GRACE))
        self._tick()
        self._task = self.spawn(self._run(), f"acestream_proxy producer {self.name}")

    def _stop_timers(self) -> None:
        for timer in (self._linger, self._ticker, self._flush_timer):
            if timer is not None:
                timer.cancel()
        self._linger = self._ticker = self._flush_timer = None
