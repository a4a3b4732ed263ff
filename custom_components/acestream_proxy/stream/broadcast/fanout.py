"""The fan-out: viewers, their cursors into the ring, keep-alive and the watchdog.

Each viewer runs in its own task (the HTTP request that serves it), keeps its own
cursor and writes at its own pace: a slow viewer only delays itself, one that falls
out of the window skips to the newest keyframe, and one whose writes block past
the write timeout is dropped. The producer wakes them with one event swap per group
of viewers per chunk, whatever their number; one timer per broadcast (the tick)
wakes them when no data comes, so they send keep-alive packets, and drops those
stuck in a write.

The groups (WAKE_GROUPS) are woken one loop iteration apart. Woken all at once,
2,000 viewers each write in the same iteration (about 150 ms of sends on one core)
and the loop polls its sockets only after the last: new connections wait in the
listen queue, which holds 128, and those beyond it are dropped and retried by the
client a second later. Between groups the loop accepts and serves joiners.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from enum import StrEnum
import logging
import time
from typing import TYPE_CHECKING, Any, Final

from ..ts import null_packets
from .lifecycle import BroadcastClosedError, BroadcastEvent, LifeCycle

if TYPE_CHECKING:
    from ..ring import Cursor, Ring
    from ..ts import ProgramInfo

_LOGGER = logging.getLogger(__package__)

# Enough null packets to keep a player's socket read alive, small enough to be noise.
KEEPALIVE: Final = null_packets(7)
JOIN_GRACE: Final = 5.0  # seconds a new broadcast waits for its first viewer
# Viewers are woken in this many groups, one loop iteration apart (see above):
# 2,000 viewers make groups of 125, about 10 ms of writes each.
WAKE_GROUPS: Final = 16


def _joined(pieces: list[bytes | memoryview]) -> bytes | memoryview:
    """One write's worth: the piece itself when there is one (no copy)."""
    if not pieces:
        return b""
    return pieces[0] if len(pieces) == 1 else b"".join(pieces)


class EndReason(StrEnum):
    """Why a viewer's stream ended."""

    ENDED = "ended"  # the broadcast stopped or failed
    DROPPED = "dropped"  # writes blocked past the write timeout


class ViewerLimitError(Exception):
    """The broadcast already has its maximum number of viewers."""


class Viewer:
    """One client of a broadcast; :meth:`stream` runs in the client's own task."""

    __slots__ = (
        "_broadcast",
        "_dropped",
        "_left",
        "_task",
        "bytes_sent",
        "cursor",
        "group",
        "history",
        "internal",
        "joined_at",
        "skips",
        "write_since",
    )

    def __init__(
        self, broadcast: FanOut, *, internal: bool = False, history: float = 0.0
    ) -> None:
        """Attach to ``broadcast`` (use Broadcaster.join)."""
        self._broadcast = broadcast
        self._left = False
        self._dropped = False
        # Which of the broadcast's wake-ups this viewer waits on (see WAKE_GROUPS).
        self.group = 0
        self._task: asyncio.Task[Any] | None = None
        # Internal viewers (the HLS segmenter) keep the broadcast alive but are
        # not people: the viewer count leaves them out.
        self.internal = internal
        # Seconds of the ring's past to start with (HLS cuts its first segments
        # from it); people start at the newest keyframe.
        self.history = history
        # Where the next byte comes from (None until the first keyframe).
        self.cursor: Cursor | None = None
        self.bytes_sent = 0
        self.skips = 0
        self.joined_at = time.monotonic()
        # When the pending write started (0: not writing); the broadcaster's
        # watchdog drops viewers stuck in a write, so no timer is armed per write.
        self.write_since = 0.0

    @property
    def broadcast(self) -> FanOut:
        """The broadcast this viewer watches."""
        return self._broadcast

    async def stream(
        self, write: Callable[[bytes | memoryview], Awaitable[None]]
    ) -> EndReason:
        """Send the broadcast to ``write`` until it ends or the client stalls.

        One coroutine, and no list of pieces kept while it waits: every viewer
        holds them for as long as it watches, so Python's collector tracks them
        (a storm of joins can set off a full collection, see views/stream.py).
        """
        self._task = task = asyncio.current_task()
        b = self._broadcast
        ring = b.ring
        batch = b.config.write_batch
        keepalive = b.config.keepalive_interval
        cursor: Cursor | None = None
        last_sent = time.monotonic()
        try:
            while not b.closed:
                if cursor is None:
                    cursor = self.cursor = self._start_at(ring)
                    if cursor is not None:
                        # PAT + PMT first, so the decoder can read the keyframe at
                        # once; their counters lead into the stream's own.
                        header = b.header_at(cursor)
                        if header:
                            await self._send(write, header)
                        continue  # the ring moved while we wrote: look again
                elif ring.behind(cursor):
                    # Fell out of the window: skip to the newest keyframe.
                    self.skips += 1
                    b.stats.viewers_skipped += 1
                    cursor = self.cursor = None
                    continue
                elif data := _joined(ring.read(cursor, batch)):
                    await self._send(write, data)
                    last_sent = time.monotonic()
                    continue
                # Woken by new data, or by the broadcaster's tick when none came.
                await b.wakes[self.group].wait()
                if time.monotonic() - last_sent >= keepalive:
                    # Cold start, stall or restart: keep the player's read alive
                    # (null packets go between whole packets: the stream stays valid).
                    await self._send(write, KEEPALIVE)
                    last_sent = time.monotonic()
        except asyncio.CancelledError:
            if not self._dropped or task is None:
                raise
            task.uncancel()
            return EndReason.DROPPED
        else:
            return EndReason.ENDED
        finally:
            self._task = None
            self.write_since = 0.0

    def _start_at(self, ring: Ring) -> Cursor | None:
        """Where to start (None while the ring holds no keyframe)."""
        if not self.history:
            return ring.newest_rap()
        cursor = ring.rap_back(self.history, time.monotonic())
        if cursor is not None:  # once: a skip goes to the newest
            self.history = 0.0
        return cursor

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


class FanOut(LifeCycle):
    """The viewers of a broadcast: joining, leaving, the linger, the tick."""

    if TYPE_CHECKING:
        ring: Ring
        program: ProgramInfo
        _last_append: float

    def _init_fanout(self) -> None:
        self.viewers: set[Viewer] = set()
        self._internal = 0
        # Recordings reading this broadcast (internal viewers, not people).
        self.recordings = 0
        # People watching through another output (HLS clients), set by that output.
        self.extra_viewers = 0
        # Called on every tick (other outputs check their clients there).
        self.tick_hooks: list[Callable[[], None]] = []
        # One event per group of viewers, replaced on every wake-up.
        self.wakes = [asyncio.Event() for _ in range(WAKE_GROUPS)]
        self._linger: asyncio.TimerHandle | None = None
        self._ticker: asyncio.TimerHandle | None = None
        self._header: tuple[tuple[Any, ...], bytes] | None = None

    def join(self, *, internal: bool = False, history: float = 0.0) -> Viewer:
        """Add a viewer (synchronous: nothing can interleave).

        ``history``: start that many seconds back in the ring (at a keyframe, as
        far back as it goes) instead of at its newest keyframe.
        """
        if self.closed:
            raise BroadcastClosedError
        if not internal and self.viewer_count >= self.config.max_viewers:
            raise ViewerLimitError(
                "the maximum number of viewers of this broadcast is reached"
            )
        viewer = Viewer(self, internal=internal, history=history)
        self.viewers.add(viewer)
        if internal:
            self._internal += 1  # group 0: recordings and HLS are woken first
        else:
            self.stats.viewers_total += 1
            viewer.group = self.stats.viewers_total % WAKE_GROUPS
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        if not internal:
            self._emit(BroadcastEvent.VIEWER_JOINED)
        return viewer

    def header_at(self, cursor: Cursor) -> bytes:
        """PAT + PMT for a viewer starting at ``cursor``.

        Joiners start at the newest keyframe, so a crowd joining shares one: it is
        worked out (a scan back through the ring for the tables' counters) once
        per keyframe, not once per joiner.
        """
        program = self.program
        key = (cursor.seq, cursor.offset, program.pat, program.pmt)
        if self._header is None or self._header[0] != key:
            self._header = (key, program.header_before(self.ring.before(cursor)))
        return self._header[1]

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

    @property
    def wake(self) -> asyncio.Event:
        """Set at the next wake-up (the first group's, for readers of our own)."""
        return self.wakes[0]

    def _wake_viewers(self) -> None:
        # One swap per group per chunk whatever the number of viewers. Viewers that
        # look at the ring from now on see the new chunk before they wait, so they
        # wait on the new events; those waiting on the old ones are woken below.
        wakes = self.wakes
        self.wakes = [asyncio.Event() for _ in wakes]
        self._wake_group(wakes, 0)

    def _wake_group(self, wakes: list[asyncio.Event], group: int) -> None:
        # The woken tasks run in the next iteration, and so does the next group's
        # wake-up: its tasks in the one after. The loop polls in between.
        wakes[group].set()
        if group + 1 < len(wakes):
            asyncio.get_running_loop().call_soon(self._wake_group, wakes, group + 1)

    @property
    def viewer_count(self) -> int:
        """People watching: TS viewers plus clients of other outputs."""
        return len(self.viewers) - self._internal + self.extra_viewers
