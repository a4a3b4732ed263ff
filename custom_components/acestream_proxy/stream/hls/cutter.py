"""Cutting segments: where one ends, what goes with it, how long it lasts.

A segment lasts from its first video frame to the next segment's first frame (or,
before a discontinuity, to its last frame plus one frame); it is cut at the first
keyframe past the target duration, early when the next keyframe would come too
late, or at any frame when none comes in time. The PES of a segment stay whole:
tails of PES started before a cut still go to the segment before it, and what the
source broke off in is dropped.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Final

from ..ts import PACKET_SIZE, PAT_PID, ProgramInfo
from .parts import PartCutter, _Building
from .pes import PTS_HZ, _flagged, _payload_start, ticks
from .window import FIRST_SEQ

# Length of the first segment of a broadcast's HLS output: the first playlist
# waits for two segments (a player that starts with two segments buffered does
# not stall waiting for the third), and a short first one makes them come sooner.
STARTUP_SEGMENT: Final = 1.0
# Room left under target duration + 0.5 s (where an EXTINF would round above it).
SAFETY: Final = 0.05
# A segment cut early (so the next keyframe does not overflow it) lasts at least
# this fraction of the segment duration.
MIN_EARLY: Final = 0.5
# A stream that flagged no keyframe for this many target durations is cut at PATs.
NO_KEYFRAME_TARGETS: Final = 2
# The unfinished segment is cut when it holds this much (no usable timestamps).
MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
# How long (video time) a finished segment waits for the tails of its PES.
TAIL_WAIT: Final = 1.0


@dataclass(slots=True)
class SegmenterStats:
    """How segments were cut (read by diagnostics and tests)."""

    keyframe_cuts: int = 0
    early_cuts: int = 0  # at a keyframe before the target: the next would overflow
    pat_cuts: int = 0  # stream without keyframe flags
    forced_cuts: int = 0  # no keyframe in time: cut at a frame
    byte_cuts: int = 0  # no usable timestamps: cut by size
    discontinuities: int = 0
    tail_packets: int = 0  # PES tails moved back to the segment they belong to
    orphan_packets: int = 0  # PES tails with no start (after a join or restart)
    dropped_segments: int = 0  # the source broke off in their only frame


class Cutter(PartCutter):
    """The segment being filled, the one closing behind it, and when to cut."""

    if TYPE_CHECKING:
        # The reading side's knowledge of the stream (see Segmenter).
        program: ProgramInfo
        _pat: bytes
        _pmt: bytes
        _clock_pid: int | None

    def __init__(self, target_duration: float, window: int, max_bytes: int) -> None:
        """Cut segments of about ``target_duration``, at most ``max_bytes``."""
        super().__init__(target_duration, window)
        self.max_bytes = max_bytes
        self.stats = SegmenterStats()
        self._limit = int((self.target + 0.5 - SAFETY) * PTS_HZ)
        self._target_ticks = int(target_duration * PTS_HZ)
        self._startup_ticks = int(min(target_duration, STARTUP_SEGMENT) * PTS_HZ)
        # Seconds between now and when the data being cut arrived (the ring's past).
        self.lag = 0.0
        self._building: _Building | None = None
        self._closing: _Building | None = None
        self._discontinuity = False
        self._last_key: int | None = None
        self._key_interval = 0
        self._frame = 0
        # PIDs whose packets need no look (their PES started in this segment).
        self._plain: set[int] = set()

    def _track_keyframe(self, clock: int, keyframe: bool) -> None:
        if keyframe:
            if self._last_key is not None:
                interval = ticks(self._last_key, clock)
                if 0 < interval <= self._limit:
                    self._key_interval = interval
            self._last_key = clock

    def _drop_unfinished(self, building: _Building) -> float | None:
        """The source broke off: drop its unfinished PES; the duration that is left.

        The frame in progress may be cut short (its end never comes), and so may
        an audio PES: decoders would choke on them. A video PES has no length, so
        the last frame always counts as unfinished; when it is the segment's only
        frame nothing playable is left: None, the segment is dropped.
        """
        self._trim_tables(building)
        assert building.start is not None
        assert building.clock is not None
        unfinished = self._open_pes(building, None)
        video = self._clock_pid
        if video in unfinished and building.clock == building.start:
            self.stats.dropped_segments += 1
            return None
        self._drop_pes(building, unfinished)
        if video in unfinished:
            return ticks(building.start, building.clock) / PTS_HZ
        return self._measured(building)

    def _drop_pes(self, building: _Building, pids: Iterable[int]) -> None:
        """Drop the segment's last PES of each of ``pids``, from its start on."""
        offsets = {pid: building.pes[pid][0] for pid in pids if pid in building.pes}
        if not offsets:
            return
        data = building.data
        first = min(offsets.values())
        kept = bytearray(data[:first])
        for pos in range(first, len(data), PACKET_SIZE):
            pid = (data[pos + 1] & 0x1F) << 8 | data[pos + 2]
            if pos < offsets.get(pid, len(data)):
                kept += data[pos : pos + PACKET_SIZE]
        building.data = kept

    def _should_cut(self, building: _Building, clock: int, keyframe: bool) -> bool:
        assert building.start is not None
        elapsed = ticks(building.start, clock)
        target = self._target()
        if keyframe:
            if elapsed >= target:
                self.stats.keyframe_cuts += 1
                return True
            if (
                elapsed >= MIN_EARLY * target
                and elapsed + self._key_interval > self._limit
            ):
                self.stats.early_cuts += 1
                return True
        if elapsed + max(building.frame, 1) > self._limit:
            self.stats.forced_cuts += 1
            return True
        return False

    def _target(self) -> int:
        # The first segment after a start is short (one keyframe interval, up to
        # STARTUP_SEGMENT): players get two segments of buffer sooner.
        if self.next_seq == FIRST_SEQ and self._closing is None:
            return self._startup_ticks
        return self._target_ticks

    def _no_keyframes(self, clock: int) -> bool:
        if self._last_key is None:
            return True
        return ticks(self._last_key, clock) > (
            NO_KEYFRAME_TARGETS * self.target * PTS_HZ
        )

    def _tail(self, pid: int, packet: bytes, start: bool) -> bool:
        """A packet that finishes a PES of the segment before the cut goes there."""
        closing = self._closing
        if closing is None or pid not in closing.open:
            return False
        if start:
            del closing.open[pid]  # its PES ended short: the next one starts here
            self._maybe_finish_closing()
            return False
        closing.data += packet
        self.stats.tail_packets += 1
        left = closing.open[pid]
        if left > 0:
            left -= PACKET_SIZE - _payload_start(packet)
            if left > 0:
                closing.open[pid] = left
            else:
                del closing.open[pid]
                self._maybe_finish_closing()
        return True

    def _begin(self, clock: int | None, discontinuity: bool) -> None:
        """Start a segment (header first) at the packet being processed."""
        started = self._start_time(datetime.now(UTC) - timedelta(seconds=self.lag))
        building = _Building(bytearray(self._pat + self._pmt), discontinuity, started)
        if self._pat and self._pmt and self.program.pmt_pid is not None:
            building.tables = {PAT_PID: 0, self.program.pmt_pid: len(self._pat)}
        self._building = building
        if self._closing is None:
            self._publish_partial(building.partial)
        self._plain = set()
        self._discontinuity = False
        if clock is not None:
            self._started(building, clock)

    def _started(self, building: _Building, clock: int) -> None:
        """The segment's first video frame: its time is known."""
        building.start = building.clock = clock
        closing = self._closing
        if closing is not None and closing.start is not None:
            closing.duration = ticks(closing.start, clock) / PTS_HZ
            building.started = closing.started + timedelta(seconds=closing.duration)
            building.partial.started = building.started
            self._maybe_finish_closing()

    def _cut(
        self,
        clock: int | None,
        *,
        discontinuity: bool,
        duration: float | None = None,
    ) -> None:
        """End the segment before the packet being processed; start the next.

        At a discontinuity the ended segment lasts ``duration`` (None: it is
        dropped, nothing playable was left in it).
        """
        building = self._building
        assert building is not None
        self._trim_tables(building)
        closing = self._closing
        if closing is not None:
            if discontinuity:
                # The tails it waits for never come: the source broke off.
                self._drop_pes(closing, closing.open)
                closing.open = {}
            self._finish_closing()
        if discontinuity:
            if duration is not None:
                self._finish(building, duration)
            self._discontinuity = True
            # Nothing before it in the playlist: no discontinuity to mark.
            self._begin(clock, self.next_seq > FIRST_SEQ)
            return
        building.open = self._open_pes(building, clock)
        self._closing = building
        self._begin(clock, False)

    def _trim_tables(self, building: _Building) -> None:
        """Tables (or discontinuity flags) right before the cut go with the next
        (never out of a part already cut: it may be listed)."""
        data = building.data
        header = max(len(self._pat) + len(self._pmt), building.part_at)
        while len(data) - PACKET_SIZE >= header:
            last = data[-PACKET_SIZE:]
            pid = (last[1] & 0x1F) << 8 | last[2]
            flag_only = not last[3] & 0x10 and _flagged(last)[1]
            if pid not in (PAT_PID, self.program.pmt_pid) and not flag_only:
                return
            del data[-PACKET_SIZE:]

    def _open_pes(self, building: _Building, clock: int | None) -> dict[int, int]:
        """PES of the segment that still miss bytes at the cut."""
        data = building.data
        video = self._clock_pid if clock is not None else None
        missing: dict[int, int] = {}
        for pid, (offset, size) in building.pes.items():
            if pid == video or size == 0:
                continue
            if size < 0:
                missing[pid] = -1
                continue
            got = 0
            for pos in range(offset, len(data), PACKET_SIZE):
                if (data[pos + 1] & 0x1F) << 8 | data[pos + 2] == pid:
                    got += PACKET_SIZE - _payload_start(data[pos : pos + PACKET_SIZE])
            if got < size:
                missing[pid] = size - got
        return missing

    def _measured(self, building: _Building) -> float:
        """Duration from the segment's own frames: the last one plus one more."""
        if building.start is None or building.clock is None:
            return 0.0
        frame = building.frame or self._frame
        return (ticks(building.start, building.clock) + frame) / PTS_HZ

    def _maybe_finish_closing(self) -> None:
        closing = self._closing
        if closing is None or closing.duration is None:
            return
        building = self._building
        if building is not None and building.clock == building.start:
            # Finished, it would make the playlist hint the next segment as
            # continuous; if the source broke off in that one's only frame,
            # the next one would follow a discontinuity instead. One frame on,
            # that can no longer happen.
            return
        if closing.open and (
            building is None
            or building.start is None
            or building.clock is None
            or ticks(building.start, building.clock) < TAIL_WAIT * PTS_HZ
        ):
            return
        self._finish_closing()

    def _finish_closing(self) -> None:
        closing = self._closing
        assert closing is not None
        self._closing = None
        duration = closing.duration
        if duration is None:
            duration = self._measured(closing)
        self._finish(closing, duration)

    def _finish(self, building: _Building, duration: float) -> None:
        # What no timestamp bounds still fits the target duration.
        duration = min(max(duration, 0.001), self._limit / PTS_HZ)
        parts = self._last_part(building, duration)
        self._publish(
            bytes(building.data),
            duration,
            building.discontinuity,
            building.started,
            parts,
        )
        following = self._building
        if following is not None and following is not building:
            # Its parts cut while this one waited for its tails.
            self._publish_partial(following.partial)
