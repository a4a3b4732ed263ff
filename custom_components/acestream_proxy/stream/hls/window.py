"""The playlist and its window: sequence numbers, dates, the target duration."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
import math


def playlist_target(segment: float) -> int:
    """EXT-X-TARGETDURATION for a segment duration: plus half, at least 1 s."""
    return math.ceil(segment) + max(1, math.ceil(segment / 2))


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment."""

    seq: int
    data: bytes
    duration: float
    discontinuity: bool
    started: datetime


class SegmentWindow:
    """The finished segments a live playlist lists, and that playlist."""

    def __init__(self, target_duration: float, window: int) -> None:
        """Aim for ``target_duration`` segments; keep at least ``window`` of them."""
        self.target_duration = target_duration
        self.target = playlist_target(target_duration)
        self.window = window
        self.segments: deque[Segment] = deque()
        self.next_seq = 0
        # Discontinuities that left the window: #EXT-X-DISCONTINUITY-SEQUENCE.
        self.discontinuity_seq = 0
        self.cut = asyncio.Event()

    def _start_time(self, now: datetime) -> datetime:
        """The date of a segment starting now."""
        previous = self.segments[-1] if self.segments else None
        started = now
        if previous is not None:
            # Never before the end of the previous segment.
            started = max(now, previous.started + timedelta(seconds=previous.duration))
        return started

    def _publish(
        self, data: bytes, duration: float, discontinuity: bool, started: datetime
    ) -> None:
        """Add a finished segment; old ones leave the window; wake the waiters."""
        segments = self.segments
        segments.append(Segment(self.next_seq, data, duration, discontinuity, started))
        self.next_seq += 1
        # RFC 8216 6.2.2: the playlist keeps at least three target durations.
        while len(segments) > self.window and (
            sum(s.duration for s in segments) - segments[0].duration >= 3 * self.target
        ):
            if segments.popleft().discontinuity:
                self.discontinuity_seq += 1
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
        lines = [
            "#EXTM3U",
            "#EXT-X-VERSION:3",
            f"#EXT-X-TARGETDURATION:{self.target}",
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
