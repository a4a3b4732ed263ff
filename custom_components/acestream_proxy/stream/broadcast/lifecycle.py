"""The life cycle of a broadcast: its phases, outages, give-up and back-off.

One state machine, :class:`Phase`, held in ``Broadcaster.phase`` and changed only by
``LifeCycle._to``. Every failure while a broadcast is open belongs to an *outage*
(:class:`Outage`): it starts at the first failed read after healthy data (or, before
any data, at the first failed read) and ends when the broadcast is healthy again:
the first keyframe after a reopen, then ``healthy_after`` (5 s) of data with no gap
longer than HEALTHY_GAP (2 s). The give-up clock (``retry_give_up``), the back-off
and the failover count live in the outage and so start from zero in the next one.
The give-up clock runs from the outage's start, or from its last decodable data if
that is later: a stream that keeps delivering pictures in bursts too short to prove
it healthy is never given up.

The table is the single source of truth: a test reads it and checks that the code
moves between phases exactly as it says.

========== ============================================ ========== ==========================================
Phase      Event                                        Next       What happens
========== ============================================ ========== ==========================================
STARTING   first keyframe, no outage                    PLAYING    stream_started
STARTING   first keyframe, outage open                  RECOVERING stream_started
STARTING   read failed                                  STARTING   outage opens; retry after back-off
PLAYING    read failed                                  BUFFERING  outage opens; stream_restarting; reopen
open       superseded (same infohash asked again)       BUFFERING* read the new session; no outage
BUFFERING  keyframe, outage open                        RECOVERING stream_recovered
BUFFERING  keyframe, no outage                          PLAYING
BUFFERING  read failed                                  BUFFERING  stream_restarting; back-off, then reopen
RECOVERING healthy_after of data without a gap          PLAYING    outage closes: give-up, back-off, failovers reset
RECOVERING read failed                                  BUFFERING  same outage; stream_restarting; reopen
open       2 failed reads on one engine, or unreachable BUFFERING* another healthy engine: stream_failover
open       engine removed from the pool (move_to)       BUFFERING* stream_failover; outage opens
open       read failed, retry_give_up since the outage  CLOSING    reason: the last error
           began or since its last data
open       not_ts_bytes (1 MiB) without MPEG-TS sync    CLOSING    reason: NOT_TS_REASON
open       producer crashed                             CLOSING    reason: "internal error"
open       close (stop, linger, engine gone, cancelled) CLOSING
CLOSING    viewers ended, producer ended, session gone  STOPPED    exactly one stream_stopped
CLOSING    same, closing because of a failure           FAILED     exactly one stream_failed
========== ============================================ ========== ==========================================

"open" is any of STARTING, PLAYING, BUFFERING, RECOVERING; * a broadcast that never
played stays STARTING until its first keyframe. "Read failed" is any end
of an engine reader that nobody asked for: end of stream, no data for
``stall_timeout`` (``start_timeout`` before the first byte), a connection or engine
error, or bytes that are not MPEG-TS. Undecodable bytes never count as data. A
close is one task, started once (``close_soon``) and awaited by every caller
(``async_close``); a broadcast that is closing is never handed to a new viewer. The
producer task ends only through a close: if it is cancelled or crashes, it closes
its broadcast. The public :class:`BroadcastState` is derived from the phase (and
LINGERING from "no viewers").
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from enum import StrEnum
import logging
import time
from typing import TYPE_CHECKING, Final, cast

from .config import (
    BroadcastConfig,
    BroadcastStats,
    EngineApi,
    Failover,
    Listener,
    Spawn,
)

if TYPE_CHECKING:
    from ..engine import StreamSession
    from . import Broadcaster
    from .fanout import Viewer

_LOGGER = logging.getLogger(__package__)

# While an outage proves over, data must not pause longer than this.
HEALTHY_GAP: Final = 2.0
# Failed (re)opens on one engine before another healthy engine is tried; an
# engine that refuses connections is left at once.
FAILOVER_AFTER: Final = 2


class BroadcastState(StrEnum):
    """Where a broadcast is in its life."""

    STARTING = "starting"
    BUFFERING = "buffering"
    PLAYING = "playing"
    LINGERING = "lingering"
    FAILED = "failed"
    STOPPED = "stopped"


class Phase(StrEnum):
    """The life-cycle state machine (see the module docstring's table)."""

    STARTING = "starting"
    PLAYING = "playing"
    BUFFERING = "buffering"
    RECOVERING = "recovering"
    CLOSING = "closing"
    STOPPED = "stopped"
    FAILED = "failed"


OPEN_PHASES: Final = frozenset(
    {Phase.STARTING, Phase.PLAYING, Phase.BUFFERING, Phase.RECOVERING}
)


@dataclass(slots=True)
class Outage:
    """One interruption of the upstream, from its first failure to health again."""

    since: float  # time.monotonic() of the first failure
    last_data: float | None = None  # decodable data last appended (RECOVERING)
    attempts: int = 0  # reopens so far (the back-off exponent)
    engine_failures: int = 0  # failed reads on the current engine
    failovers: int = 0
    healthy_from: float | None = None  # data flowing since (RECOVERING)


class BroadcastEvent(StrEnum):
    """What a broadcast tells its owner."""

    STARTED = "stream_started"
    STOPPED = "stream_stopped"
    FAILED = "stream_failed"
    RESTARTING = "stream_restarting"
    RECOVERED = "stream_recovered"
    FAILOVER = "stream_failover"
    VIEWER_JOINED = "viewer_joined"
    VIEWER_LEFT = "viewer_left"


class BroadcastClosedError(Exception):
    """The broadcast is closing; open a new one."""


class LifeCycle:
    """The phase table's room: phases, outages, closing, give-up and back-off."""

    name: str
    config: BroadcastConfig
    spawn: Spawn
    # What the life cycle asks of the other rooms (fan-out, producer).
    if TYPE_CHECKING:
        viewers: set[Viewer]
        _task: asyncio.Task[None] | None
        _failover: Failover | None
        _move: tuple[str, EngineApi] | None
        _adopted: StreamSession | None
        _kick: asyncio.Event

        def _wake_viewers(self) -> None: ...
        def _stop_timers(self) -> None: ...
        def _reopened(self) -> None: ...
        async def _stop_session(self) -> None: ...
        async def _switch_engine(self, engine_id: str, client: EngineApi) -> None: ...

    def _init_lifecycle(self, listener: Listener) -> None:
        self._listener = listener
        self.stats = BroadcastStats()
        self.phase = Phase.STARTING
        self.outage: Outage | None = None
        self._close_reason = BroadcastState.STOPPED
        self.failure: str | None = None
        self._closing: asyncio.Task[None] | None = None

    @property
    def closed(self) -> bool:
        """Closing or closed: no new viewers, never handed out again."""
        return self.phase not in OPEN_PHASES

    @property
    def alive(self) -> bool:
        """Open and its producer running (what a new viewer may join)."""
        return not self.closed and self._task is not None and not self._task.done()

    @property
    def state(self) -> BroadcastState:
        """The phase as users see it."""
        phase = self.phase
        if phase in (Phase.PLAYING, Phase.RECOVERING):
            return BroadcastState.PLAYING if self.viewers else BroadcastState.LINGERING
        if phase is Phase.STARTING:
            return BroadcastState.STARTING
        if phase is Phase.BUFFERING:
            return BroadcastState.BUFFERING
        if phase is Phase.CLOSING:
            return self._close_reason
        return BroadcastState(phase.value)

    def _to(self, phase: Phase) -> None:
        if phase is not self.phase:
            _LOGGER.debug("Broadcast %s: %s -> %s", self.name, self.phase, phase)
            self.phase = phase

    def close_soon(
        self, reason: BroadcastState = BroadcastState.STOPPED
    ) -> asyncio.Task[None]:
        """Start closing (once) and return the close, which any caller may await."""
        if self._closing is None:
            self._close_reason = (
                BroadcastState.FAILED
                if reason is BroadcastState.FAILED
                else BroadcastState.STOPPED
            )
            self._to(Phase.CLOSING)
            self._stop_timers()
            self._wake_viewers()
            self._closing = self.spawn(
                self._close(), f"acestream_proxy close {self.name}"
            )
        return self._closing

    async def async_close(
        self, reason: BroadcastState = BroadcastState.STOPPED
    ) -> None:
        """Close and wait until the close is done, whoever started it."""
        closing = self.close_soon(reason)
        if closing is not asyncio.current_task():
            await asyncio.shield(closing)

    async def _close(self) -> None:
        """End the viewers, stop the producer and the engine session; tell once."""
        try:
            task = self._task
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
            await self._stop_session()
        finally:
            failed = self._close_reason is BroadcastState.FAILED
            self._to(Phase.FAILED if failed else Phase.STOPPED)
            self._emit(BroadcastEvent.FAILED if failed else BroadcastEvent.STOPPED)

    def _fail(self, reason: str) -> None:
        self.failure = reason
        _LOGGER.warning("Broadcast %s failed: %s", self.name, reason)
        self.close_soon(BroadcastState.FAILED)

    def _open_outage(self) -> Outage:
        if self.outage is None:
            self.outage = Outage(since=time.monotonic())
        return self.outage

    async def _read_failed(self, error: str, unreachable: bool) -> bool:
        """Apply the outage's retry policy; False when the broadcast gives up."""
        cfg = self.config
        fresh = self.outage is None
        outage = self._open_outage()
        # Counted from the outage's start or its last pictures, whichever is later:
        # a stream that keeps delivering, even in bursts that never prove it
        # healthy, is not given up.
        elapsed = time.monotonic() - (outage.last_data or outage.since)
        if not fresh and elapsed > cfg.retry_give_up:
            _LOGGER.warning(
                "Broadcast %s: no recovery in %.0f s, giving up", self.name, elapsed
            )
            self._fail(error)
            return False
        _LOGGER.info("Broadcast %s interrupted (%s); reopening", self.name, error)
        self.stats.upstream_restarts += 1
        self._reopened()
        self._emit(BroadcastEvent.RESTARTING)
        outage.engine_failures += 1
        if unreachable or outage.engine_failures >= FAILOVER_AFTER:
            failover = self._failover
            target = failover(cast("Broadcaster", self)) if failover else None
            if target is not None:
                await self._switch_engine(*target)
                outage.engine_failures = 0
                outage.failovers += 1
                return True
        # Never two engine sessions for one broadcast: end the old one first.
        await self._stop_session()
        await self._backoff(min(2.0**outage.attempts * 0.5, cfg.retry_backoff_max))
        outage.attempts += 1
        return True

    async def _backoff(self, delay: float) -> None:
        """Wait before a reopen; a move or an adopted session cuts it short."""
        if self._move is not None or self._adopted is not None:
            return
        self._kick.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._kick.wait()

    def _keyframe(self) -> None:
        """The first keyframe of a (re)opened session: viewers get pictures again."""
        phase = self.phase
        if phase is Phase.STARTING:
            self.stats.first_data_at = time.time()
            self._to(Phase.PLAYING if self.outage is None else Phase.RECOVERING)
            self._emit(BroadcastEvent.STARTED)
        elif phase is Phase.BUFFERING:
            if self.outage is None:
                self._to(Phase.PLAYING)
            else:
                self._to(Phase.RECOVERING)
                self._emit(BroadcastEvent.RECOVERED)

    def _recovering(self, now: float, last_append: float) -> None:
        """Data flows after an outage: end it once it flowed long enough."""
        outage = self.outage
        if outage is None:  # pragma: no cover - RECOVERING always has an outage
            self._to(Phase.PLAYING)
            return
        outage.last_data = now
        if outage.healthy_from is None or now - last_append > HEALTHY_GAP:
            outage.healthy_from = now
        elif now - outage.healthy_from >= self.config.healthy_after:
            _LOGGER.debug("Broadcast %s healthy again", self.name)
            self.outage = None
            self._to(Phase.PLAYING)

    def _emit(self, event: BroadcastEvent) -> None:
        try:
            self._listener(cast("Broadcaster", self), event)
        except Exception:
            _LOGGER.exception("Listener failed on %s for %s", event, self.name)
