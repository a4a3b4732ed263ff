"""The HLS output of a broadcast: its clients, and the segmenter's own viewer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
import time
from typing import Final

from ..broadcast import Broadcaster, Viewer, ViewerLimitError
from .segmenter import Segmenter
from .window import Part

# An HLS client that fetched nothing for this long (or 4 segment durations, if
# longer) no longer counts as a viewer.
IDLE_MIN: float = 10.0
# How many segments the first playlist waits for (see cutter.STARTUP_SEGMENT).
STARTUP_SEGMENTS: Final = 2
# The segmenter starts this many target durations back in the ring (as far as it
# goes): hls.js and Apple's players start three target durations behind the live
# edge, so a warm broadcast's first playlist already lists that much, at once.
HISTORY_TARGETS: Final = 3
# A waiting request looks at the broadcast this often (it may have ended).
RECHECK: Final = 1.0


class HlsOutput:
    """The HLS side of one broadcast: a segmenter fed by an internal viewer.

    HLS clients count as viewers while they fetch; the broadcast's tick forgets
    those that stopped fetching, and when none is left the internal viewer leaves,
    so the broadcast lingers and stops like it does for TS viewers.
    """

    def __init__(
        self,
        broadcaster: Broadcaster,
        *,
        target_duration: float = 2.0,
        window: int = 8,
        idle_after: float | None = None,
    ) -> None:
        """Attach to ``broadcaster`` (nothing runs until a client fetches)."""
        self.broadcaster = broadcaster
        self.segmenter = Segmenter(target_duration, window)
        self.idle_after = idle_after or max(4 * target_duration, IDLE_MIN)
        self.clients: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        self._viewer: Viewer | None = None
        self._skips = 0
        self._fed: int | None = None  # ring chunk where the next write's data starts
        broadcaster.tick_hooks.append(self._tick)

    @property
    def active_clients(self) -> int:
        """Clients that fetched within the idle time."""
        horizon = time.monotonic() - self.idle_after
        return sum(1 for seen in self.clients.values() if seen >= horizon)

    def _forget_idle(self) -> None:
        horizon = time.monotonic() - self.idle_after
        for client, seen in list(self.clients.items()):
            if seen < horizon:
                del self.clients[client]
        self.broadcaster.extra_viewers = len(self.clients)

    def touch(self, client: str) -> None:
        """A client fetched: count it, and make sure segments are being made.

        Raises BroadcastClosedError / ViewerLimitError (a new client past the
        broadcast's maximum number of viewers).
        """
        broadcaster = self.broadcaster
        self._forget_idle()
        if (
            client not in self.clients
            and broadcaster.viewer_count >= broadcaster.config.max_viewers
        ):
            raise ViewerLimitError(
                "the maximum number of viewers of this broadcast is reached"
            )
        if self._task is None or self._task.done():
            viewer = broadcaster.join(
                internal=True,
                history=HISTORY_TARGETS * self.segmenter.target
                + self.segmenter.target_duration,
            )
            if self._task is not None:
                self.segmenter.resume()
            self._viewer = viewer
            self._skips = 0
            self._fed = None
            self._task = broadcaster.spawn(
                self._consume(viewer), f"acestream_proxy hls {broadcaster.name}"
            )
        self.clients[client] = time.monotonic()
        broadcaster.extra_viewers = len(self.clients)

    def _tick(self) -> None:
        """The broadcast's tick: forget idle clients; stop when none is left."""
        self._forget_idle()
        if not self.clients and self._task is not None and not self._task.done():
            self._task.cancel()

    async def _consume(self, viewer: Viewer) -> None:
        try:
            await viewer.stream(self._write)
        finally:
            viewer.leave()
            self.broadcaster.extra_viewers = 0

    async def _write(self, data: bytes | memoryview) -> None:
        viewer = self._viewer
        if viewer is not None and viewer.skips != self._skips:
            # The segmenter fell out of the replay window and skipped ahead.
            self._skips = viewer.skips
            self._fed = None
            self.segmenter.resume()
        if viewer is not None and viewer.cursor is not None:
            # Dates of segments cut from the ring's past are those of their data:
            # this data starts where the cursor was after the previous write.
            start = viewer.cursor.seq if self._fed is None else self._fed
            self.segmenter.lag = self.broadcaster.ring.age(start, time.monotonic())
            self._fed = viewer.cursor.seq
        self.segmenter.feed(data)

    async def _until(self, ready: Callable[[], bool], limit: float) -> bool:
        """Wait (bounded) until ``ready()``; False if the time ran out first or
        the broadcast ended. Each new segment or part wakes the waiters."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while not ready():
            left = deadline - loop.time()
            if self.broadcaster.closed or left <= 0:
                return False
            try:
                async with asyncio.timeout(min(RECHECK, left)):
                    await self.segmenter.cut.wait()
            except TimeoutError:
                continue
        return True

    async def wait_for_segment(self, limit: float) -> bool:
        """Wait (bounded) for the startup segments; True if at least one exists."""
        segments = self.segmenter.segments
        return await self._until(
            lambda: len(segments) >= STARTUP_SEGMENTS, limit
        ) or bool(segments)

    async def wait_for(self, seq: int, part: int | None, limit: float) -> bool:
        """A blocking playlist reload: wait (bounded) for segment ``seq`` to be
        finished, or (``part`` given) for that part of it."""
        return await self._until(lambda: self.segmenter.has(seq, part), limit)

    async def wait_for_part(self, seq: int, index: int, limit: float) -> Part | None:
        """A part, waited for (bounded) if it is the next of the segment being
        cut (a player fetching the playlist's preload hint)."""
        segmenter = self.segmenter

        def ready() -> bool:
            if segmenter.part(seq, index) is not None:
                return True
            return not (seq == segmenter.next_seq and index == segmenter.parts_cut)

        await self._until(ready, limit)
        return segmenter.part(seq, index)
