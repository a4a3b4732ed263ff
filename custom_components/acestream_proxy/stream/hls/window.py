"""The playlist and its window: sequence numbers, dates, the target duration.

Low-latency HLS (RFC 8216bis): each segment is also published in parts while it
is cut (see parts.py); the playlist lists the parts of its last segments and of
the segment being cut, and hints the next part. Players that know no parts
(VLC, ffmpeg, GStreamer) skip those tags and read the segments as before.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
import math
from typing import Final

# Part target duration (EXT-X-PART-INF): chosen by measurement (README, zap table).
PART_TARGET: Final = 0.5
# Complete segments whose parts the playlist still lists (Apple's example: two).
PART_SEGMENTS: Final = 2
# How far behind the newest part a player stays (EXT-X-SERVER-CONTROL): at least
# three part targets (RFC 8216bis recommends it), and at least the target
# duration: hls.js (1.6) now and then loads a whole segment instead of its parts,
# and a player held back less than a segment then stalls until it is finished
# (measured: stalls of 0.3-0.6 s at 1.5 s with 2 s segments).
PART_HOLD_BACK: Final = 3 * PART_TARGET


# The first segment's sequence number: hls.js (1.6) sends no blocking reload
# while the newest segment's number is 0 (it tests the number for truth).
FIRST_SEQ: Final = 1


def playlist_target(segment: float) -> int:
    """EXT-X-TARGETDURATION for a segment duration: plus half, at least 1 s."""
    return math.ceil(segment) + max(1, math.ceil(segment / 2))


@dataclass(frozen=True, slots=True)
class Part:
    """One partial segment: a slice of its segment's bytes."""

    data: bytes
    duration: float
    independent: bool  # starts with the segment's header and a keyframe


@dataclass(slots=True)
class Partial:
    """The parts of a segment still being cut."""

    discontinuity: bool
    started: datetime
    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment."""

    seq: int
    data: bytes
    duration: float
    discontinuity: bool
    started: datetime
    parts: tuple[Part, ...] = ()


def _date(started: datetime) -> str:
    return "#EXT-X-PROGRAM-DATE-TIME:" + started.isoformat(
        timespec="milliseconds"
    ).replace("+00:00", "Z")


def _part_line(part: Part, uri: str) -> str:
    line = f'#EXT-X-PART:DURATION={part.duration:.3f},URI="{uri}"'
    return line + ",INDEPENDENT=YES" if part.independent else line


class SegmentWindow:
    """The finished segments a live playlist lists, and that playlist."""

    def __init__(self, target_duration: float, window: int) -> None:
        """Aim for ``target_duration`` segments; keep at least ``window`` of them."""
        self.target_duration = target_duration
        self.target = playlist_target(target_duration)
        self.window = window
        self.segments: deque[Segment] = deque()
        self.next_seq = FIRST_SEQ
        # Discontinuities that left the window: #EXT-X-DISCONTINUITY-SEQUENCE.
        self.discontinuity_seq = 0
        # The parts of segment next_seq published so far (None: none begun).
        self.partial: Partial | None = None
        # Set (and replaced) at each new segment or part.
        self.cut = asyncio.Event()

    def _start_time(self, now: datetime) -> datetime:
        """The date of a segment starting now."""
        previous = self.segments[-1] if self.segments else None
        started = now
        if previous is not None:
            # Never before the end of the previous segment.
            started = max(now, previous.started + timedelta(seconds=previous.duration))
        return started

    def _wake(self) -> None:
        cut, self.cut = self.cut, asyncio.Event()
        cut.set()

    def _publish(
        self,
        data: bytes,
        duration: float,
        discontinuity: bool,
        started: datetime,
        parts: tuple[Part, ...] = (),
    ) -> None:
        """Add a finished segment; old ones leave the window; wake the waiters."""
        segments = self.segments
        segments.append(
            Segment(self.next_seq, data, duration, discontinuity, started, parts)
        )
        self.next_seq += 1
        self.partial = None
        # RFC 8216 6.2.2: the playlist keeps at least three target durations.
        while len(segments) > self.window and (
            sum(s.duration for s in segments) - segments[0].duration >= 3 * self.target
        ):
            if segments.popleft().discontinuity:
                self.discontinuity_seq += 1
        self._wake()

    def _publish_partial(self, partial: Partial) -> None:
        """Segment next_seq's parts so far (its list grows as parts are cut)."""
        self.partial = partial
        if partial.parts:
            self._wake()

    def get(self, seq: int) -> Segment | None:
        """A segment still in the window."""
        if not self.segments:
            return None
        index = seq - self.segments[0].seq
        if 0 <= index < len(self.segments):
            return self.segments[index]
        return None

    @property
    def parts_cut(self) -> int:
        """How many parts of the segment being cut exist."""
        return len(self.partial.parts) if self.partial is not None else 0

    def part(self, seq: int, index: int) -> Part | None:
        """A part of a segment in the window or of the one being cut."""
        if seq == self.next_seq:
            parts: tuple[Part, ...] | list[Part] = (
                self.partial.parts if self.partial is not None else ()
            )
        elif (segment := self.get(seq)) is not None:
            parts = segment.parts
        else:
            return None
        return parts[index] if 0 <= index < len(parts) else None

    def has(self, seq: int, index: int | None) -> bool:
        """Whether segment ``seq`` is finished (index None) or part ``index`` of
        it exists; a part past the segment's last stands for the next one's
        first (RFC 8216bis 6.2.5.2)."""
        if index is None or seq < self.next_seq - 1:
            return seq < self.next_seq
        if seq == self.next_seq - 1:
            last = self.segments[-1] if self.segments else None
            if last is None or index < len(last.parts):
                return True
            seq, index = seq + 1, 0
        return seq < self.next_seq or (seq == self.next_seq and index < self.parts_cut)

    def playlist(
        self,
        url_for: Callable[[Segment], str],
        part_url: Callable[[int, int], str] | None = None,
    ) -> str:
        """The live media playlist of the window; with ``part_url(seq, index)``
        (a part's URL) a low-latency one, which lists parts and hints the next."""
        segments = list(self.segments)
        lines = ["#EXTM3U", "#EXT-X-VERSION:3", f"#EXT-X-TARGETDURATION:{self.target}"]
        if part_url is not None:
            lines += [
                f"#EXT-X-PART-INF:PART-TARGET={PART_TARGET:.3f}",
                "#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,"
                f"PART-HOLD-BACK={max(PART_HOLD_BACK, self.target):.3f}",
            ]
        lines += [
            f"#EXT-X-MEDIA-SEQUENCE:{segments[0].seq if segments else self.next_seq}",
            f"#EXT-X-DISCONTINUITY-SEQUENCE:{self.discontinuity_seq}",
        ]
        with_parts = len(segments) - PART_SEGMENTS
        for number, segment in enumerate(segments):
            if segment.discontinuity:
                lines.append("#EXT-X-DISCONTINUITY")
            lines.append(_date(segment.started))
            if part_url is not None and number >= with_parts:
                lines.extend(
                    _part_line(part, part_url(segment.seq, index))
                    for index, part in enumerate(segment.parts)
                )
            lines.append(f"#EXTINF:{segment.duration:.3f},")
            lines.append(url_for(segment))
        if part_url is not None:
            lines += self._open_parts(part_url)
        return "\n".join(lines) + "\n"

    def _open_parts(self, part_url: Callable[[int, int], str]) -> list[str]:
        """The segment being cut: its parts so far and the hint of its next.

        The hint is there even before its first part: hls.js (1.6) reads a
        low-latency playlist that ends with a whole segment as if that segment
        were also the one being cut, and stops on a "media sequence mismatch"
        when a later reload lists the next one whole. It takes the hinted
        segment's discontinuity as given, so the cutter lists a segment only
        once whether it follows a discontinuity can no longer change.
        """
        partial = self.partial
        if partial is None:
            return []
        lines = ["#EXT-X-DISCONTINUITY"] if partial.discontinuity else []
        if partial.parts:
            lines.append(_date(partial.started))
        lines.extend(
            _part_line(part, part_url(self.next_seq, index))
            for index, part in enumerate(partial.parts)
        )
        uri = part_url(self.next_seq, len(partial.parts))
        lines.append(f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{uri}"')
        return lines
