"""One engine session per broadcast, shared with any number of viewers.

No Home Assistant imports. The producer (one task per broadcast) reads the engine's
MPEG-TS once, aligns it to packets, indexes random-access points and appends chunks to
a shared ring; its work per chunk does not depend on the number of viewers (it swaps
one wake-up event). Each viewer runs in its own task (the HTTP handler that serves
it), keeps its own cursor and writes at its own pace: a slow viewer only delays itself,
one that falls out of the window skips to the newest keyframe, and one whose writes
block past the write timeout is dropped. There are no locks.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from enum import StrEnum
import logging
import time
from typing import Any, Final, Protocol

import aiohttp

from .engine import (
    ContentRef,
    EngineConnectionError,
    EngineError,
    StreamSession,
)
from .ring import Cursor, Ring
from .ts import (
    ProgramInfo,
    TsAligner,
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


class BroadcastState(StrEnum):
    """Where a broadcast is in its life."""

    STARTING = "starting"
    BUFFERING = "buffering"
    PLAYING = "playing"
    LINGERING = "lingering"
    FAILED = "failed"
    STOPPED = "stopped"


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
    retry_give_up: float = 120.0  # failing this long without data: the broadcast fails
    retry_backoff_max: float = 10.0
    rap_fallback_bytes: int = 4 * 1024 * 1024  # no keyframe flag seen: join anywhere


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
                    # PAT + PMT first, so the decoder can read the keyframe at once.
                    header = b.program.header
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
        self.state = BroadcastState.STARTING
        self.viewers: set[Viewer] = set()
        self._internal = 0
        # People watching through another output (HLS clients), set by that output.
        self.extra_viewers = 0
        self.wake = asyncio.Event()
        self.closed = False
        self._closing: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._linger: asyncio.TimerHandle | None = None
        self._adopted: StreamSession | None = None
        self._reader: aiohttp.ClientResponse | None = None
        self._await_rap = True
        self._discontinuity = False
        self._no_rap_bytes = 0
        self._no_rai = False
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._pending_since = 0.0
        self._flush_timer: asyncio.TimerHandle | None = None
        self._last_append = time.monotonic()
        self._ticker: asyncio.TimerHandle | None = None
        self._rate: deque[list[int]] = deque(maxlen=BITRATE_WINDOW + 1)
        self.failure: str | None = None

    # -- lifecycle ---------------------------------------------------------------

    def start(self) -> None:
        """Start the producer; linger until the first viewer joins."""
        self._task = self.spawn(self._run(), f"acestream_proxy producer {self.name}")
        # The viewer that asked for the broadcast joins a few loop turns later; with
        # linger 0 the timer must not beat it.
        self._arm_linger(max(self.config.linger, JOIN_GRACE))
        self._tick()

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
            if self.state is BroadcastState.LINGERING:
                self.state = BroadcastState.PLAYING
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
        if self.state is BroadcastState.PLAYING:
            self.state = BroadcastState.LINGERING
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
        if self._reader is not None:
            self._reader.close()

    def close_soon(self, reason: BroadcastState = BroadcastState.STOPPED) -> None:
        """Close from synchronous code."""
        if self._closing is None and not self.closed:
            self._closing = self.spawn(
                self.async_close(reason), f"acestream_proxy close {self.name}"
            )

    async def async_close(
        self, reason: BroadcastState = BroadcastState.STOPPED
    ) -> None:
        """End the viewers, stop the producer and the engine session (idempotent)."""
        if self.closed:
            if (
                self._closing is not None
                and self._closing is not asyncio.current_task()
            ):
                await asyncio.shield(self._closing)
            return
        self.closed = True
        if reason is BroadcastState.STOPPED and self.state is BroadcastState.FAILED:
            reason = BroadcastState.FAILED
        self.state = reason
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        for timer in (self._ticker, self._flush_timer):
            if timer is not None:
                timer.cancel()
        self._ticker = self._flush_timer = None
        self._wake_viewers()
        task = self._task
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await self._stop_session()
        self._emit(
            BroadcastEvent.FAILED
            if reason is BroadcastState.FAILED
            else BroadcastEvent.STOPPED
        )

    async def _fail_over(self) -> bool:
        """Move to another healthy engine, if the owner knows one."""
        target = self._failover(self) if self._failover else None
        if target is None:
            return False
        await self._stop_session()
        self.previous_engine_id = self.engine_id
        self.engine_id, self.client = target
        _LOGGER.warning(
            "Broadcast %s moves to another engine; viewers stay connected", self.name
        )
        self._emit(BroadcastEvent.FAILOVER)
        return True

    async def _stop_session(self) -> None:
        session, self.session = self.session, None
        if session is None:
            return
        try:
            await self.client.stop_session(session)
        except EngineError as err:
            _LOGGER.debug(
                "Stopping the engine session of %s failed: %s", self.name, err
            )

    # -- producer ----------------------------------------------------------------

    async def _run(self) -> None:
        """Read the engine; reopen the session on failures while viewers wait."""
        try:
            await self._read_until_failed()
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Broadcast %s producer crashed", self.name)
            self.failure = "internal error"
            self.state = BroadcastState.FAILED
            self.close_soon(BroadcastState.FAILED)

    async def _attempt(self) -> tuple[bool, str, bool]:
        """Open (if needed) and read one session: (data seen, error, unreachable)."""
        try:
            if self.session is None:
                # Reopen by what the broadcast was opened with: an engine that
                # restarted, or another one after a failover, refuses a bare
                # infohash until it has loaded the content id's descriptor.
                self.session = self._adopted or await self.client.start_session(
                    self.content, start_timeout=self.config.getstream_timeout
                )
                self._adopted = None
            return await self._pump(self.session), "the engine ended the stream", False
        except (EngineError, aiohttp.ClientError, TimeoutError) as err:
            unreachable = isinstance(
                err, EngineConnectionError | aiohttp.ClientConnectorError
            )
            return False, str(err) or type(err).__name__, unreachable

    async def _read_until_failed(self) -> None:
        cfg = self.config
        failing_since: float | None = None
        attempt = 0
        engine_failures = 0
        loop = asyncio.get_running_loop()
        while True:
            data_seen, error, unreachable = await self._attempt()
            if data_seen:
                failing_since = None
                attempt = engine_failures = 0
            if self._adopted is not None:
                # Superseded on purpose: read the new session, never stop the old
                # one (stopping it could end the new reader of the same infohash).
                self.session = self._adopted
                self._adopted = None
                self._reopened()
                continue
            now = loop.time()
            if failing_since is None:
                failing_since = now
            elif now - failing_since > cfg.retry_give_up:
                self.failure = error
                _LOGGER.warning(
                    "Broadcast %s failed: %s (gave up after %.0f s)",
                    self.name,
                    error,
                    now - failing_since,
                )
                self.state = BroadcastState.FAILED
                self.close_soon(BroadcastState.FAILED)
                return
            _LOGGER.info("Broadcast %s interrupted (%s); reopening", self.name, error)
            self.stats.upstream_restarts += 1
            self._reopened()
            self._emit(BroadcastEvent.RESTARTING)
            engine_failures += 1
            if (unreachable or engine_failures >= FAILOVER_AFTER) and (
                await self._fail_over()
            ):
                engine_failures = 0
                continue
            # Never two engine sessions for one broadcast: end the old one first.
            await self._stop_session()
            await asyncio.sleep(min(2.0**attempt * 0.5, cfg.retry_backoff_max))
            attempt += 1

    def _reopened(self) -> None:
        """After a restart viewers get null packets, then data from a keyframe."""
        if self.state is not BroadcastState.STARTING:
            self.state = BroadcastState.BUFFERING
        self._await_rap = True
        self._discontinuity = True
        self._no_rap_bytes = 0
        self._aligner.reset()
        self.program.reset()
        self._wake_viewers()

    async def _pump(self, session: StreamSession) -> bool:
        """Copy one engine reader into the ring; True if any data arrived."""
        cfg = self.config
        resp = await self.client.open_stream(
            session, connect_timeout=cfg.connect_timeout, read_timeout=cfg.start_timeout
        )
        self._reader = resp
        seen = False
        try:
            content = resp.content
            while True:
                async with asyncio.timeout(
                    cfg.stall_timeout if seen else cfg.start_timeout
                ):
                    data = await content.readany()
                if not data:
                    return seen
                seen = True
                self._feed(data)
        finally:
            self._reader = None
            resp.close()
            if self._pending:
                # What this session delivered still reaches viewers.
                self._flush(time.monotonic())

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
        aligned = self._aligner.feed(data)
        if aligned:
            if not self._pending:
                self._pending_since = now
                # Data that arrives just before a stall must not wait for it.
                self._flush_timer = asyncio.get_running_loop().call_later(
                    FLUSH_SECONDS, self._flush_due
                )
            self._pending.append(aligned)
            self._pending_size += len(aligned)
        # Reads come in whatever sizes the socket gives; viewers are woken and
        # written to per ring chunk, so gather reads into fewer, larger chunks.
        if self._pending and (
            self._pending_size >= FLUSH_BYTES
            or now - self._pending_since >= FLUSH_SECONDS
        ):
            self._flush(now)

    def _flush_due(self) -> None:
        self._flush_timer = None
        if self._pending:
            self._flush(time.monotonic())

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
        self._last_append = now
        self.stats.chunks += 1
        self._wake_viewers()

    def _start_at_rap(self, chunk: bytes, raps: list[int]) -> tuple[bytes, list[int]]:
        """Drop data until the first keyframe of a (re)opened session."""
        if not (raps and self.program.complete):
            self._no_rap_bytes += len(chunk)
            if self._no_rap_bytes < self.config.rap_fallback_bytes:
                self.stats.discarded_bytes += len(chunk)
                return b"", []
            # The stream never flags keyframes: join here, and later viewers at PATs.
            self._no_rai = True
            raps = [0]
        first = raps[0]
        self.stats.discarded_bytes += first
        if first:
            chunk = chunk[first:]
            raps = [offset - first for offset in raps]
        if self._discontinuity:
            # Viewers already playing get the new session's PAT + PMT, then its
            # first keyframe flagged as a discontinuity (decoders reset there).
            if chunk[3] & 0x20:
                chunk = mark_discontinuity(chunk, 0)
            header = self.program.header
            chunk = header + chunk
            raps = [offset + len(header) for offset in raps]
        self._await_rap = False
        was = self.state
        self.state = (
            BroadcastState.PLAYING if self.viewers else BroadcastState.LINGERING
        )
        if self.stats.first_data_at is None:
            self.stats.first_data_at = time.time()
            self._emit(BroadcastEvent.STARTED)
        elif was is BroadcastState.BUFFERING:
            self._emit(BroadcastEvent.RECOVERED)
        return chunk, raps

    def _tick(self) -> None:
        """Once per keepalive interval, whatever the number of chunks.

        Wakes viewers when no data came (so they can send keep-alive packets during
        a cold start or a restart), and drops viewers stuck in one write for longer
        than the write timeout: one timer per broadcast instead of one per write.
        """
        now = time.monotonic()
        cfg = self.config
        if now - self._last_append >= cfg.keepalive_interval:
            self._wake_viewers()
        horizon = now - cfg.write_timeout
        for viewer in [v for v in self.viewers if 0 < v.write_since < horizon]:
            viewer.drop()
        self._ticker = asyncio.get_running_loop().call_later(
            cfg.keepalive_interval, self._tick
        )

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
