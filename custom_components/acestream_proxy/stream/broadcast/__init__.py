"""One engine session per broadcast, shared with any number of viewers.

No Home Assistant imports. The producer (one task per broadcast) reads the engine's
MPEG-TS once, aligns it to packets, indexes random-access points and appends chunks to
a shared ring; its work per chunk does not depend on the number of viewers (it swaps
one wake-up event). Each viewer runs in its own task (the HTTP handler that serves
it), keeps its own cursor and writes at its own pace: a slow viewer only delays itself,
one that falls out of the window skips to the newest keyframe, and one whose writes
block past the write timeout is dropped. There are no locks.

Life cycle
==========

One state machine, :class:`Phase`, held in ``Broadcaster.phase`` and changed only by
``Broadcaster._to``. Every failure while a broadcast is open belongs to an *outage*
(:class:`Outage`): it starts at the first failed read after healthy data (or, before
any data, at the first failed read) and ends when the broadcast is healthy again:
the first keyframe after a reopen, then ``healthy_after`` (5 s) of data with no gap
longer than HEALTHY_GAP (2 s). The give-up clock (``retry_give_up``), the back-off
and the failover count live in the outage and so start from zero in the next one.
The give-up clock runs from the outage's start, or from its last decodable data if
that is later: a stream that keeps delivering pictures in bursts too short to prove
it healthy is never given up.

========== ============================================ ========== ==========================================
Phase      Event                                        Next       What happens
========== ============================================ ========== ==========================================
STARTING   first keyframe                               PLAYING    stream_started (RECOVERING if an outage is open)
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
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
import contextlib
from dataclasses import dataclass, field
from enum import StrEnum
import logging
import time
from typing import Any, Final, Protocol

import aiohttp

from ..engine import (
    ContentRef,
    EngineConnectionError,
    EngineError,
    StreamSession,
)
from ..ring import Cursor, Ring
from ..ts import (
    PACKET_SIZE,
    ProgramInfo,
    TsAligner,
    last_counters,
    mark_discontinuity,
    null_packets,
    pat_offsets,
    random_access_offsets,
)

_LOGGER = logging.getLogger(__name__)

# Enough null packets to keep a player's socket read alive, small enough to be noise.
KEEPALIVE: Final = null_packets(7)
BITRATE_WINDOW: Final = 5  # seconds
JOIN_GRACE: Final = 5.0  # seconds a new broadcast waits for its first viewer
# Reads are gathered into ring chunks of about this size or age. Every chunk wakes
# every viewer and costs each one a socket write, the cost that grows with viewers;
# 256 KiB (a quarter second at 8 Mbit/s) has a caught-up viewer write one shared
# chunk four times a second, and cut the CPU per delivered Gbit/s by about 40 %
# against 64 KiB (make bench). Players buffer seconds: the added quarter second is
# not seen.
FLUSH_BYTES: Final = 256 * 1024
FLUSH_SECONDS: Final = 0.25
# While an outage proves over, data must not pause longer than this.
HEALTHY_GAP: Final = 2.0
# "Not MPEG-TS": this many bytes in a row without three packets in sync. At the
# slowest live bitrates (1 Mbit/s) that is about 8 s of data; a real TS stream
# never loses sync for that long, a Matroska or MP4 file never finds it.
NOT_TS_BYTES: Final = 1024 * 1024
# A run of at least this many aligned packets proves the data is MPEG-TS (three
# in a row can happen by chance in a non-TS file, ten practically cannot).
TS_PROOF_PACKETS: Final = 10
NOT_TS_REASON: Final = (
    "the engine sends no MPEG-TS (is this a video-on-demand torrent?)"
)


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


class EndReason(StrEnum):
    """Why a viewer's stream ended."""

    ENDED = "ended"  # the broadcast stopped or failed
    DROPPED = "dropped"  # writes blocked past the write timeout


class BroadcastClosedError(Exception):
    """The broadcast is closing; open a new one."""


class ViewerLimitError(Exception):
    """The broadcast already has its maximum number of viewers."""


class EngineApi(Protocol):
    """The part of EngineClient the broadcaster uses."""

    async def start_session(
        self, content: ContentRef, *, pid: str | None = None, start_timeout: float = ...
    ) -> StreamSession:
        """Open a session."""

    async def stop_session(self, session: StreamSession) -> bool:
        """Stop a session."""

    async def open_stream(
        self, session: StreamSession, *, connect_timeout: float, read_timeout: float
    ) -> aiohttp.ClientResponse:
        """Open the progressive reader."""


@dataclass(frozen=True, slots=True)
class BroadcastConfig:
    """Tunables of one broadcast."""

    linger: float = 30.0
    replay_window: float = 10.0
    max_ring_bytes: int = 64 * 1024 * 1024
    max_viewers: int = 50
    write_timeout: float = 10.0
    write_batch: int = 256 * 1024
    # The engine's answer to getstream, then its cold start (first byte).
    getstream_timeout: float = 30.0
    start_timeout: float = 60.0
    stall_timeout: float = 20.0  # no data mid-stream
    connect_timeout: float = 10.0
    keepalive_interval: float = 1.0
    retry_give_up: float = 120.0  # an outage this long: the broadcast fails
    retry_backoff_max: float = 10.0
    healthy_after: float = 5.0  # data after a reopen's first keyframe: outage over
    rap_fallback_bytes: int = 4 * 1024 * 1024  # no keyframe flag seen: join anywhere
    not_ts_bytes: int = NOT_TS_BYTES  # this much without MPEG-TS sync: not MPEG-TS


@dataclass(slots=True)
class BroadcastStats:
    """Counters kept by the producer and the viewers; read by the HA layer."""

    bytes_in: int = 0
    bytes_out: int = 0
    chunks: int = 0
    viewers_total: int = 0
    viewers_dropped: int = 0
    viewers_skipped: int = 0
    upstream_restarts: int = 0
    resyncs: int = 0
    discarded_bytes: int = 0
    started_at: float = field(default_factory=time.time)
    first_data_at: float | None = None


class Viewer:
    """One client of a broadcast; :meth:`stream` runs in the client's own task."""

    __slots__ = (
        "_broadcast",
        "_dropped",
        "_left",
        "_task",
        "bytes_sent",
        "internal",
        "joined_at",
        "skips",
        "write_since",
    )

    def __init__(self, broadcast: Broadcaster, *, internal: bool = False) -> None:
        """Attach to ``broadcast`` (use Broadcaster.join)."""
        self._broadcast = broadcast
        self._left = False
        self._dropped = False
        self._task: asyncio.Task[Any] | None = None
        # Internal viewers (the HLS segmenter) keep the broadcast alive but are
        # not people: the viewer count leaves them out.
        self.internal = internal
        self.bytes_sent = 0
        self.skips = 0
        self.joined_at = time.monotonic()
        # When the pending write started (0: not writing); the broadcaster's
        # watchdog drops viewers stuck in a write, so no timer is armed per write.
        self.write_since = 0.0

    @property
    def broadcast(self) -> Broadcaster:
        """The broadcast this viewer watches."""
        return self._broadcast

    async def stream(
        self, write: Callable[[bytes | memoryview], Awaitable[None]]
    ) -> EndReason:
        """Send the broadcast to ``write`` until it ends or the client stalls."""
        self._task = task = asyncio.current_task()
        try:
            return await self._stream(write)
        except asyncio.CancelledError:
            if not self._dropped or task is None:
                raise
            task.uncancel()
            return EndReason.DROPPED
        finally:
            self._task = None
            self.write_since = 0.0

    async def _stream(
        self, write: Callable[[bytes | memoryview], Awaitable[None]]
    ) -> EndReason:
        b = self._broadcast
        ring = b.ring
        batch = b.config.write_batch
        keepalive = b.config.keepalive_interval
        cursor: Cursor | None = None
        last_sent = time.monotonic()
        while not b.closed:
            if cursor is None:
                cursor = ring.newest_rap()
                if cursor is not None:
                    # PAT + PMT first, so the decoder can read the keyframe at once;
                    # their counters lead into the stream's own.
                    header = b.program.header_before(ring.before(cursor))
                    if header:
                        await self._send(write, header)
                    continue  # the ring moved while we wrote: look again
            elif ring.behind(cursor):
                # Fell out of the window: skip to the newest keyframe.
                self.skips += 1
                b.stats.viewers_skipped += 1
                cursor = None
                continue
            else:
                pieces = ring.read(cursor, batch)
                if pieces:
                    await self._send(
                        write, pieces[0] if len(pieces) == 1 else b"".join(pieces)
                    )
                    last_sent = time.monotonic()
                    continue
            # Woken by new data, or by the broadcaster's tick when none came.
            await b.wake.wait()
            if time.monotonic() - last_sent >= keepalive:
                # Cold start, stall or restart: keep the player's read alive (null
                # packets go between whole packets, so the stream stays valid).
                await self._send(write, KEEPALIVE)
                last_sent = time.monotonic()
        return EndReason.ENDED

    async def _send(
        self,
        write: Callable[[bytes | memoryview], Awaitable[None]],
        data: bytes | memoryview,
    ) -> None:
        self.write_since = time.monotonic()
        await write(data)
        self.write_since = 0.0
        size = len(data)
        self.bytes_sent += size
        self._broadcast.stats.bytes_out += size

    def drop(self) -> None:
        """Disconnect a viewer stuck in a write (called by the watchdog)."""
        if self._task is None or self._dropped:
            return
        self._dropped = True
        b = self._broadcast
        b.stats.viewers_dropped += 1
        _LOGGER.info(
            "Viewer of %s dropped: it took no data for %.0f s",
            b.name,
            b.config.write_timeout,
        )
        self._task.cancel()

    def leave(self) -> None:
        """Detach (idempotent); the last viewer out starts the linger."""
        if not self._left:
            self._left = True
            self._broadcast._viewer_left(self)


type Spawn = Callable[[Coroutine[Any, Any, None], str], asyncio.Task[None]]
type Listener = Callable[["Broadcaster", BroadcastEvent], None]
type Failover = Callable[["Broadcaster"], tuple[str, EngineApi] | None]
# Failed (re)opens on one engine before another healthy engine is tried; an
# engine that refuses connections is left at once.
FAILOVER_AFTER: Final = 2


class _NotMpegTsError(Exception):
    """The engine's bytes are not MPEG-TS."""


class Broadcaster:
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
        self.client = client
        # Which engine serves it, and how to find another one when it dies.
        self.engine_id = engine_id
        self.previous_engine_id: str | None = None
        self._failover = failover
        self.session: StreamSession | None = session
        self.infohash = session.infohash
        self.content = content
        self.config = config
        self.name = name or content.value
        self.spawn = spawn
        self._listener = listener
        self.ring = Ring(config.max_ring_bytes, config.replay_window)
        self.program = ProgramInfo()
        self._aligner = TsAligner()
        self.stats = BroadcastStats()
        self.phase = Phase.STARTING
        self.outage: Outage | None = None
        self._close_reason = BroadcastState.STOPPED
        self.failure: str | None = None
        self.viewers: set[Viewer] = set()
        self._internal = 0
        # People watching through another output (HLS clients), set by that output.
        self.extra_viewers = 0
        # Called on every tick (other outputs check their clients there).
        self.tick_hooks: list[Callable[[], None]] = []
        self.wake = asyncio.Event()
        self._closing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        # Requests to the producer, taken at its next step: read a session the
        # engine opened for us (adopt), or continue on another engine (move_to).
        self._adopted: StreamSession | None = None
        self._move: tuple[str, EngineApi] | None = None
        # Sessions to stop, with the client of their engine (kept until stopped).
        self._stale: list[tuple[EngineApi, StreamSession]] = []
        self._kick = asyncio.Event()  # cuts a back-off short
        self._reader: aiohttp.ClientResponse | None = None
        self._await_rap = True
        self._discontinuity = False
        self._no_rap_bytes = 0
        self._no_rai = False
        self._undecodable = 0  # bytes since the data last proved to be MPEG-TS
        self._aligned_bytes = 0
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._last_append = time.monotonic()
        self._ticker: asyncio.TimerHandle | None = None
        self._rate: deque[list[int]] = deque(maxlen=BITRATE_WINDOW + 1)

    # -- state -------------------------------------------------------------------

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

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the producer; linger until the first viewer joins."""
        # The viewer that asked for the broadcast joins a few loop turns later; with
        # linger 0 the timer must not beat it.
        self._arm_linger(max(self.config.linger, JOIN_GRACE))
        self._tick()
        self._task = self.spawn(self._run(), f"acestream_proxy producer {self.name}")

    def join(self, *, internal: bool = False) -> Viewer:
        """Add a viewer (synchronous: nothing can interleave)."""
        if self.closed:
            raise BroadcastClosedError
        if not internal and self.viewer_count >= self.config.max_viewers:
            raise ViewerLimitError(
                "the maximum number of viewers of this broadcast is reached"
            )
        viewer = Viewer(self, internal=internal)
        self.viewers.add(viewer)
        if internal:
            self._internal += 1
        else:
            self.stats.viewers_total += 1
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if not internal:
            self._emit(BroadcastEvent.VIEWER_JOINED)
        return viewer

    def _viewer_left(self, viewer: Viewer) -> None:
        self.viewers.discard(viewer)
        if viewer.internal:
            self._internal -= 1
        if self.closed:
            return
        if not viewer.internal:
            self._emit(BroadcastEvent.VIEWER_LEFT)
        if not self.viewers:
            self._arm_linger()

    def _arm_linger(self, delay: float | None = None) -> None:
        if self.viewers or self.closed or self._linger is not None:
            return
        loop = asyncio.get_running_loop()
        self._linger = loop.call_later(
            self.config.linger if delay is None else delay, self._linger_expired
        )

    def _linger_expired(self) -> None:
        self._linger = None
        if not self.viewers and not self.closed:
            self.close_soon()

    def adopt(self, session: StreamSession) -> None:
        """Take over a session the engine opened for this infohash.

        A new getstream for the same infohash (e.g. a content id naming this
        broadcast) supersedes our session on the engine; reading the new one keeps
        exactly one engine session per broadcast.
        """
        self._adopted = session
        self._interrupt()

    def move_to(self, engine_id: str, client: EngineApi) -> None:
        """Continue on another engine: the current one leaves the pool.

        Viewers stay; the producer stops the session on the old engine and opens
        one on the new engine (a failover).
        """
        if not self.closed:
            self._move = (engine_id, client)
            self._interrupt()

    def _interrupt(self) -> None:
        """Make the producer look at its requests now (end a read or a back-off)."""
        if self._reader is not None:
            self._reader.close()
        self._kick.set()

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
            for timer in (self._linger, self._ticker, self._flush_timer):
                if timer is not None:
                    timer.cancel()
            self._linger = self._ticker = self._flush_timer = None
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

    async def _switch_engine(self, engine_id: str, client: EngineApi) -> None:
        """Leave the current engine for another; its sessions there are stopped.

        The switch is told before any await, so the owner never counts the
        broadcast on the engine it leaves (an unload racing a failover).
        """
        for session in (self.session, self._adopted):
            if session is not None:
                # Opened on the engine we leave: it must not keep downloading.
                self._stale.append((self.client, session))
        self.session = self._adopted = None
        self.previous_engine_id = self.engine_id
        self.engine_id, self.client = engine_id, client
        _LOGGER.warning(
            "Broadcast %s moves to another engine; viewers stay connected", self.name
        )
        self._emit(BroadcastEvent.FAILOVER)
        await self._stop_session()

    async def _stop_session(self) -> None:
        """Stop the current engine session and any left behind by a switch."""
        if self.session is not None:
            self._stale.append((self.client, self.session))
            self.session = None
        stale = self._stale
        while stale:
            client, session = stale[0]
            try:
                await client.stop_session(session)
            except EngineError as err:
                _LOGGER.debug(
                    "Stopping the engine session of %s failed: %s", self.name, err
                )
            # Forgotten only once stopped: a close that cancels this stop halfway
            # stops the session itself.
            stale.pop(0)

    # -- producer ----------------------------------------------------------------

    async def _run(self) -> None:
        """The producer: reads until the broadcast closes; ends only by a close."""
        try:
            await self._produce()
        except asyncio.CancelledError:
            if not self.closed:
                # Cancelled by someone else than our own close: never leave the
                # broadcast open without a producer.
                _LOGGER.debug("Broadcast %s producer cancelled", self.name)
                self.close_soon()
            raise
        except Exception:
            _LOGGER.exception("Broadcast %s producer crashed", self.name)
            self._fail("internal error")

    async def _produce(self) -> None:
        while True:
            error, unreachable, fatal = await self._attempt()
            if self.closed:
                return
            if self._move is not None:
                engine_id, client = self._move
                self._move = None
                if engine_id != self.engine_id:
                    await self._switch_engine(engine_id, client)
                outage = self._open_outage()
                outage.engine_failures = 0
                outage.failovers += 1
                self._reopened()
                continue
            if self._adopted is not None:
                # Superseded on purpose: read the new session, never stop the old
                # one (stopping it could end the new reader of the same infohash).
                self.session, self._adopted = self._adopted, None
                self._reopened()
                continue
            if fatal:
                self._fail(error)
                return
            if not await self._read_failed(error, unreachable):
                return

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
            target = self._failover(self) if self._failover else None
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

    async def _interruptible(
        self, opening: Coroutine[Any, Any, aiohttp.ClientResponse]
    ) -> aiohttp.ClientResponse | None:
        """Open a reader unless a move or an adopted session comes first (None).

        An engine answers the reader only after its cold start (10-25 s): a move
        off an unloading engine must not wait for it.
        """
        task = asyncio.ensure_future(opening)
        self._kick.clear()  # requests are in _move / _adopted, checked here
        kick = asyncio.ensure_future(self._kick.wait())
        try:
            if self._move is None and self._adopted is None:
                await asyncio.wait((task, kick), return_when=asyncio.FIRST_COMPLETED)
        finally:
            kick.cancel()
            if not task.done():
                task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None if task.cancelled() else task.result()

    async def _backoff(self, delay: float) -> None:
        """Wait before a reopen; a move or an adopted session cuts it short."""
        if self._move is not None or self._adopted is not None:
            return
        self._kick.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay):
                await self._kick.wait()

    async def _attempt(self) -> tuple[str, bool, bool]:
        """Open (if needed) and read one session: (why it ended, unreachable, fatal)."""
        if self._move is not None:
            return "moving to another engine", False, False
        try:
            if self.session is None:
                # Reopen by what the broadcast was opened with: an engine that
                # restarted, or another one after a failover, refuses a bare
                # infohash until it has loaded the content id's descriptor.
                session = self._adopted or await self.client.start_session(
                    self.content, start_timeout=self.config.getstream_timeout
                )
                self._adopted = None
                self.session = session
            aligned = self._aligned_bytes
            bytes_in = self.stats.bytes_in
            error = await self._pump(self.session)
        except _NotMpegTsError:
            return NOT_TS_REASON, False, True
        except (EngineError, aiohttp.ClientError, TimeoutError) as err:
            unreachable = isinstance(
                err, EngineConnectionError | aiohttp.ClientConnectorError
            )
            error = str(err) or type(err).__name__
            if unreachable or self.session is None:
                return error, unreachable, False
        if self.stats.bytes_in != bytes_in and self._aligned_bytes == aligned:
            # Bytes came, none of them MPEG-TS: say so, however the read ended (a
            # short answer repeated on every reopen fails with this reason).
            return NOT_TS_REASON, False, False
        return error, False, False

    def _reopened(self) -> None:
        """After a restart viewers get null packets, then data from a keyframe."""
        if self.phase is not Phase.STARTING:
            self._to(Phase.BUFFERING)
        self._await_rap = True
        self._discontinuity = True
        self._no_rap_bytes = 0
        self._aligner.reset()
        self.program.reset()
        self._wake_viewers()

    async def _pump(self, session: StreamSession) -> str:
        """Copy one engine reader into the ring until it ends; say why it ended."""
        cfg = self.config
        resp = await self._interruptible(
            self.client.open_stream(
                session,
                connect_timeout=cfg.connect_timeout,
                read_timeout=cfg.start_timeout,
            )
        )
        if resp is None:
            return "interrupted"
        self._reader = resp
        seen = False
        try:
            if self._move is not None or self._adopted is not None:
                return "interrupted"
            content = resp.content
            while True:
                async with asyncio.timeout(
                    cfg.stall_timeout if seen else cfg.start_timeout
                ):
                    data = await content.readany()
                if not data:
                    break
                seen = True
                self._feed(data)
        finally:
            self._reader = None
            resp.close()
            if self._pending:
                # What this session delivered still reaches viewers.
                self._flush(time.monotonic())
        return "the engine ended the stream"

    def _feed(self, data: bytes) -> None:
        """The per-read hot path: O(bytes), never O(viewers)."""
        stats = self.stats
        size = len(data)
        stats.bytes_in += size
        now = time.monotonic()
        second = int(now)
        rate = self._rate
        if rate and rate[-1][0] == second:
            rate[-1][1] += size
        else:
            rate.append([second, size])
        aligner = self._aligner
        discarded = aligner.discarded
        aligned = aligner.feed(data)
        stats.discarded_bytes += aligner.discarded - discarded
        stats.resyncs = aligner.resyncs
        if len(aligned) >= TS_PROOF_PACKETS * PACKET_SIZE:
            self._undecodable = 0
        else:
            self._undecodable += max(size - len(aligned), 0)
            if self._undecodable >= self.config.not_ts_bytes:
                raise _NotMpegTsError
        if aligned:
            self._aligned_bytes += len(aligned)
            if not self._pending:
                # Gathered data is flushed at FLUSH_SECONDS old at the latest, so
                # data that arrives just before a stall does not wait for it.
                self._flush_timer = asyncio.get_running_loop().call_later(
                    FLUSH_SECONDS, self._flush_due
                )
            self._pending.append(aligned)
            self._pending_size += len(aligned)
        # Reads come in whatever sizes the socket gives; viewers are woken and
        # written to per ring chunk, so gather reads into fewer, larger chunks.
        # Their age is the flush timer's business.
        if self._pending_size >= FLUSH_BYTES:
            self._flush(now)

    def _flush_due(self) -> None:
        self._flush_timer = None
        if not self._pending or self.closed:
            return
        try:
            self._flush(time.monotonic())
        except Exception:
            # Outside the producer's task: fail the broadcast the same way.
            _LOGGER.exception("Broadcast %s producer crashed", self.name)
            self._fail("internal error")

    def _flush(self, now: float) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        pending = self._pending
        chunk = pending[0] if len(pending) == 1 else b"".join(pending)
        self._pending = []
        self._pending_size = 0
        program = self.program
        if self._await_rap and not program.complete:
            program.scan(chunk)
        raps = random_access_offsets(chunk, program.video_pid)
        if self._no_rai and not raps:
            raps = pat_offsets(chunk)
        if self._await_rap:
            chunk, raps = self._start_at_rap(chunk, raps)
            if not chunk:
                return
        self.ring.append(chunk, raps, now)
        if self.phase is Phase.RECOVERING:
            self._recovering(now)
        self._last_append = now
        self.stats.chunks += 1
        self._wake_viewers()

    def _recovering(self, now: float) -> None:
        """Data flows after an outage: end it once it flowed long enough."""
        outage = self.outage
        if outage is None:  # pragma: no cover - RECOVERING always has an outage
            self._to(Phase.PLAYING)
            return
        outage.last_data = now
        if outage.healthy_from is None or now - self._last_append > HEALTHY_GAP:
            outage.healthy_from = now
        elif now - outage.healthy_from >= self.config.healthy_after:
            _LOGGER.debug("Broadcast %s healthy again", self.name)
            self.outage = None
            self._to(Phase.PLAYING)

    def _start_at_rap(self, chunk: bytes, raps: list[int]) -> tuple[bytes, list[int]]:
        """Drop data until the first keyframe of a (re)opened session."""
        program = self.program
        if not (raps and program.complete):
            self._no_rap_bytes += len(chunk)
            if self._no_rap_bytes < self.config.rap_fallback_bytes:
                self.stats.discarded_bytes += len(chunk)
                last_counters(chunk, program.counters)
                return b"", []
            # The stream never flags keyframes: join at a PAT (or here), and later
            # viewers at PATs.
            self._no_rai = True
            raps = pat_offsets(chunk) or [0]
        first = raps[0]
        self.stats.discarded_bytes += first
        if first:
            last_counters(memoryview(chunk)[:first], program.counters)
            chunk = chunk[first:]
            raps = [offset - first for offset in raps]
        if self._discontinuity:
            # Viewers already playing get the new session's first keyframe
            # flagged as a discontinuity (decoders reset there).
            chunk = mark_discontinuity(chunk, 0)
        # PAT + PMT lead in (flagged after a restart): every join point of the
        # ring then has the stream's own tables before it.
        header = program.lead_in(self._discontinuity, chunk)
        chunk = header + chunk
        raps = [offset + len(header) for offset in raps]
        self._await_rap = False
        self._keyframe()
        return chunk, raps

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

    def _tick(self) -> None:
        """Once per keepalive interval, whatever the number of chunks.

        Wakes viewers when no data came (so they can send keep-alive packets during
        a cold start or a restart), and drops viewers stuck in one write for longer
        than the write timeout: one timer per broadcast instead of one per write.
        """
        now = time.monotonic()
        cfg = self.config
        # Next tick first: whatever fails below must not end the keep-alive, and a
        # close started below cancels this one.
        self._ticker = asyncio.get_running_loop().call_later(
            cfg.keepalive_interval, self._tick
        )
        if now - self._last_append >= cfg.keepalive_interval:
            self._wake_viewers()
        horizon = now - cfg.write_timeout
        for viewer in [v for v in self.viewers if 0 < v.write_since < horizon]:
            viewer.drop()
        for hook in self.tick_hooks:
            try:
                hook()
            except Exception:
                _LOGGER.exception("Tick of %s failed", self.name)

    def _wake_viewers(self) -> None:
        # One swap per chunk whatever the number of viewers.
        wake, self.wake = self.wake, asyncio.Event()
        wake.set()

    def _emit(self, event: BroadcastEvent) -> None:
        try:
            self._listener(self, event)
        except Exception:
            _LOGGER.exception("Listener failed on %s for %s", event, self.name)

    # -- numbers -----------------------------------------------------------------

    @property
    def bitrate(self) -> float:
        """Incoming bit/s over the last full seconds (up to BITRATE_WINDOW)."""
        now = int(time.monotonic())
        recent = [
            (second, size)
            for second, size in self._rate
            if now - BITRATE_WINDOW <= second < now
        ]
        if not recent:
            return 0.0
        span = now - recent[0][0]
        return sum(size for _, size in recent) * 8 / span

    @property
    def viewer_count(self) -> int:
        """People watching: TS viewers plus clients of other outputs."""
        return len(self.viewers) - self._internal + self.extra_viewers
