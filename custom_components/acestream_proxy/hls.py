"""HLS from the shared broadcast (no Home Assistant imports).

The segmenter is one more consumer of the broadcast's ring, exactly like a TS viewer
(an "internal" viewer): no second engine session, no ffmpeg, no transcoding. It cuts
segments at keyframes (random_access_indicator) once the target duration is reached,
measured with the keyframes' PTS, and keeps a rolling window. Each segment starts with
PAT + PMT so it decodes on its own. An upstream restart (the broadcaster flags the
first keyframe after it with discontinuity_indicator) starts a new segment marked
#EXT-X-DISCONTINUITY; sequence numbers keep counting.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
import math
import time
from typing import Final

from .broadcaster import KEEPALIVE, Broadcaster, Viewer
from .ts import PACKET_SIZE, ProgramInfo, random_access_offsets

PTS_HZ: Final = 90_000
# An HLS client that fetched nothing for this long (or 4 segment durations, if
# longer) no longer counts as a viewer.
IDLE_MIN: float = 10.0
# Length of the first segment of a broadcast's HLS output, and how many segments
# the first playlist waits for: a player that starts with two segments buffered
# does not stall waiting for the third.
STARTUP_SEGMENT: Final = 1.0
STARTUP_SEGMENTS: Final = 2
PTS_WRAP: Final = 1 << 33


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment."""

    seq: int
    data: bytes
    duration: float
    discontinuity: bool
    started: datetime


def keyframe_pts(packet: bytes | memoryview) -> int | None:
    """PTS of the PES that starts in this packet, if any."""
    if not packet[1] & 0x40:
        return None
    pos = 4
    if packet[3] & 0x20:
        pos += 1 + packet[4]
    if pos + 14 > PACKET_SIZE or packet[pos : pos + 3] != b"\x00\x00\x01":
        return None
    if not packet[pos + 7] & 0x80:
        return None
    p = packet[pos + 9 : pos + 14]
    return (
        ((p[0] >> 1) & 0x07) << 30
        | p[1] << 22
        | (p[2] >> 1) << 15
        | p[3] << 7
        | p[4] >> 1
    )


class Segmenter:
    """Cuts a TS byte stream (as a viewer receives it) into HLS segments."""

    def __init__(self, target_duration: float = 3.0, window: int = 8) -> None:
        """Aim for ``target_duration`` segments; keep the last ``window`` of them."""
        self.target_duration = target_duration
        self.segments: deque[Segment] = deque(maxlen=window)
        self.next_seq = 0
        # Discontinuities that left the window: #EXT-X-DISCONTINUITY-SEQUENCE.
        self.discontinuity_seq = 0
        self.program = ProgramInfo()
        self._pieces: list[bytes | memoryview] = []
        self._start_pts: int | None = None
        self._started = datetime.now(UTC)
        self._discontinuity = False
        self._resume_discontinuity = False
        self.cut = asyncio.Event()
        self._startup_target = min(target_duration, STARTUP_SEGMENT)

    def resume(self) -> None:
        """The consumer rejoins after a pause: what follows is discontinuous."""
        self._pieces = []
        self._start_pts = None
        self._resume_discontinuity = bool(self.segments) or self.next_seq > 0

    def feed(self, data: bytes | memoryview) -> None:
        """Consume aligned TS; cut at keyframes past the target duration."""
        if data is KEEPALIVE:
            return
        chunk = bytes(data)
        program = self.program
        if not program.complete:
            program.scan(chunk)
        start = 0
        for offset in random_access_offsets(chunk, program.video_pid):
            pts = keyframe_pts(chunk[offset : offset + PACKET_SIZE])
            if pts is None:
                continue
            discontinuity = bool(chunk[offset + 5] & 0x80)
            if self._start_pts is None:
                # First keyframe: everything before it is not decodable alone.
                self._begin(pts, discontinuity or self._resume_discontinuity)
                self._resume_discontinuity = False
                start = offset
                continue
            elapsed = ((pts - self._start_pts) % PTS_WRAP) / PTS_HZ
            # The first segment after a start is one keyframe interval (or up to
            # STARTUP_SEGMENT): players get two segments of buffer sooner.
            target = self.target_duration if self.segments else self._startup_target
            if discontinuity or elapsed >= target:
                self._pieces.append(chunk[start:offset])
                self._finish(elapsed if not discontinuity else None)
                self._begin(pts, discontinuity)
                start = offset
        if self._start_pts is not None:
            self._pieces.append(chunk[start:])

    def _begin(self, pts: int, discontinuity: bool) -> None:
        self._pieces = [self.program.header]
        self._start_pts = pts
        self._started = datetime.now(UTC)
        self._discontinuity = discontinuity

    def _finish(self, duration: float | None) -> None:
        data = b"".join(self._pieces)
        if duration is None or duration <= 0 or duration > 10 * self.target_duration:
            # Timestamps jumped (restart): estimate from the wall clock.
            duration = max((datetime.now(UTC) - self._started).total_seconds(), 0.1)
        if (
            len(self.segments) == self.segments.maxlen
            and self.segments[0].discontinuity
        ):
            self.discontinuity_seq += 1
        self.segments.append(
            Segment(self.next_seq, data, duration, self._discontinuity, self._started)
        )
        self.next_seq += 1
        cut, self.cut = self.cut, asyncio.Event()
        cut.set()

    def get(self, seq: int) -> Segment | None:
        """A segment still in the window."""
        if not self.segments:
            return None
        index = seq - self.segments[0].seq
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None

    def playlist(self, url_for: Callable[[Segment], str]) -> str:
        """The live media playlist of the window."""
        segments = list(self.segments)
        target = max(
            [math.ceil(self.target_duration), *(round(s.duration) for s in segments)]
        )
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{target}",
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else self.next_seq}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_seq}",
        ]
        for segment in segments:
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(
                "#EXT-X-PROGRAM-DATE-TIME:"
                + segment.started.isoformat(timespec="milliseconds").replace(
                    "+00:00", "Z"
                )
            )
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(url_for(segment))
        return "\n".join(lines) + "\n"


class _Idle(Exception):
    """No HLS client fetched for a while: stop consuming."""


class HlsOutput:
    """The HLS side of one broadcast: a segmenter fed by an internal viewer.

    HLS clients count as viewers while they fetch; when none has fetched for
    ``idle_after`` seconds the internal viewer leaves, so the broadcast can linger
    and stop like it does for TS viewers.
    """

    def __init__(
        self,
        broadcaster: Broadcaster,
        *,
        target_duration: float = 3.0,
        window: int = 8,
        idle_after: float | None = None,
    ) -> None:
        """Attach to ``broadcaster`` (nothing runs until a client fetches)."""
        self.broadcaster = broadcaster
        self.segmenter = Segmenter(target_duration, window)
        self.idle_after = idle_after or max(4 * target_duration, IDLE_MIN)
        self.clients: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None

    @property
    def active_clients(self) -> int:
        """Clients that fetched within the idle time."""
        horizon = time.monotonic() - self.idle_after
        return sum(1 for seen in self.clients.values() if seen >= horizon)

    def touch(self, client: str) -> None:
        """A client fetched: count it, and make sure segments are being made.

        Raises BroadcastClosedError / ViewerLimitError from the broadcaster's join.
        """
        self.clients[client] = time.monotonic()
        if self._task is None or self._task.done():
            viewer = self.broadcaster.join(internal=True)
            if self._task is not None:
                self.segmenter.resume()
            self._task = self.broadcaster.spawn(
                self._consume(viewer), f"acestream_proxy hls {self.broadcaster.name}"
            )
        self.broadcaster.extra_viewers = self.active_clients

    async def _consume(self, viewer: Viewer) -> None:
        try:
            await viewer.stream(self._write)
        except _Idle:
            pass
        finally:
            viewer.leave()
            self.broadcaster.extra_viewers = 0

    async def _write(self, data: bytes | memoryview) -> None:
        cut = self.segmenter.next_seq
        self.segmenter.feed(data)
        if self.segmenter.next_seq == cut:
            return  # clients are recounted once per segment, not per chunk
        horizon = time.monotonic() - self.idle_after
        for client, seen in list(self.clients.items()):
            if seen < horizon:
                del self.clients[client]
        self.broadcaster.extra_viewers = len(self.clients)
        if not self.clients:
            raise _Idle

    async def wait_for_segment(self, limit: float) -> bool:
        """Wait (bounded) for the startup segments; True if at least one exists."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + limit
        while len(self.segmenter.segments) < STARTUP_SEGMENTS:
            left = deadline - loop.time()
            if self.broadcaster.closed or left <= 0:
                return bool(self.segmenter.segments)
            try:
                async with asyncio.timeout(min(1.0, left)):
                    await self.segmenter.cut.wait()
            except TimeoutError:
                continue
        return True

    async def async_close(self) -> None:
        """Stop consuming."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
