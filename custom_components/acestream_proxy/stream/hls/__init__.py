"""HLS from the shared broadcast (no Home Assistant imports).

The segmenter is one more consumer of the broadcast's ring, exactly like a TS viewer
(an "internal" viewer): no second engine session, no ffmpeg, no transcoding.

Segments are timed by the video's own timestamps, never by the wall clock: a
segment lasts from its first video frame to the next segment's first frame (or,
before a discontinuity, to its last frame plus one frame). A segment is cut at the
first keyframe (random_access_indicator) past the target duration; a stream that
never flags keyframes is cut at PATs instead. The playlist's target duration is
fixed when the output starts (the segment duration plus a margin for keyframe
intervals longer than it); a segment that would outgrow it is cut early, at a
keyframe if the keyframe interval says the next one would come too late, or at any
frame if none comes in time (counted in the stats).

Each segment starts with PAT + PMT (copies of the stream's latest, with its
counters, so the stream's next tables follow on) and then every elementary stream
at the start of a PES: the tail of an audio PES that started before the cut goes
to the segment where it started, so no PES is split or repeated. An upstream
restart (the broadcaster flags the first keyframe after it with
discontinuity_indicator) starts a new segment marked #EXT-X-DISCONTINUITY;
sequence numbers keep counting. What the source broke off in before it never
ends: the frame in progress and unfinished PES are dropped (with the segment, if
that frame was its only one), so no decoder gets a truncated frame.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
import math
import time
from typing import Final

from ..broadcast import KEEPALIVE, Broadcaster, Viewer, ViewerLimitError
from ..ts import NULL_PID, PACKET_SIZE, PAT_PID, ProgramInfo

PTS_HZ: Final = 90_000
PTS_WRAP: Final = 1 << 33
_PTS_HALF: Final = 1 << 32
# An HLS client that fetched nothing for this long (or 4 segment durations, if
# longer) no longer counts as a viewer.
IDLE_MIN: float = 10.0
# Length of the first segment of a broadcast's HLS output, and how many segments
# the first playlist waits for: a player that starts with two segments buffered
# does not stall waiting for the third.
STARTUP_SEGMENT: Final = 1.0
STARTUP_SEGMENTS: Final = 2
# Room left under target duration + 0.5 s (where an EXTINF would round above it).
SAFETY: Final = 0.05
# A segment cut early (so the next keyframe does not overflow it) lasts at least
# this fraction of the segment duration.
MIN_EARLY: Final = 0.5
# Video timestamps that move back, or forward by more than this, without a flag:
# the source restarted anyway.
JUMP_SECONDS: Final = 5.0
# A stream that flagged no keyframe for this many target durations is cut at PATs.
NO_KEYFRAME_TARGETS: Final = 2
# The unfinished segment is cut when it holds this much (no usable timestamps).
MAX_SEGMENT_BYTES: Final = 16 * 1024 * 1024
# How long (video time) a finished segment waits for the tails of its PES.
TAIL_WAIT: Final = 1.0
# Seconds between the output's last timestamp and the first after a discontinuity.
REBASE_GAP: Final = 1.0


def playlist_target(segment: float) -> int:
    """EXT-X-TARGETDURATION for a segment duration: plus half, at least 1 s."""
    return math.ceil(segment) + max(1, math.ceil(segment / 2))


def ticks(start: int, end: int) -> int:
    """``end - start`` in 90 kHz ticks across the 33-bit wrap (negative: earlier)."""
    return (end - start + _PTS_HALF) % PTS_WRAP - _PTS_HALF


def _timestamp(p: bytes | bytearray | memoryview, pos: int) -> int:
    return (
        ((p[pos] >> 1) & 0x07) << 30
        | p[pos + 1] << 22
        | (p[pos + 2] >> 1) << 15
        | p[pos + 3] << 7
        | p[pos + 4] >> 1
    )


def _write_timestamp(p: bytearray, pos: int, value: int) -> None:
    p[pos] = (p[pos] & 0xF0) | ((value >> 29) & 0x0E) | 0x01
    p[pos + 1] = (value >> 22) & 0xFF
    p[pos + 2] = ((value >> 14) & 0xFE) | 0x01
    p[pos + 3] = (value >> 7) & 0xFF
    p[pos + 4] = ((value << 1) & 0xFE) | 0x01


def _retime(packet: bytes, shift: int) -> bytes:
    """The packet with its PCR and PES timestamps moved by ``shift`` ticks."""
    p = bytearray(packet)
    if p[3] & 0x20 and p[4] >= 7 and p[5] & 0x10:
        base = p[6] << 25 | p[7] << 17 | p[8] << 9 | p[9] << 1 | p[10] >> 7
        base = (base + shift) % PTS_WRAP
        p[6:10] = (base >> 1).to_bytes(4, "big")
        p[10] = (base & 0x01) << 7 | (p[10] & 0x7F)
    if p[1] & 0x40:
        pos = _payload_start(p)
        if pos + 14 <= PACKET_SIZE and p[pos : pos + 3] == b"\x00\x00\x01":
            flags = p[pos + 7]
            if flags & 0x80:
                pts = _timestamp(p, pos + 9)
                _write_timestamp(p, pos + 9, (pts + shift) % PTS_WRAP)
                if flags & 0x40 and pos + 19 <= PACKET_SIZE:
                    dts = _timestamp(p, pos + 14)
                    _write_timestamp(p, pos + 14, (dts + shift) % PTS_WRAP)
    return bytes(p)


def _payload_start(packet: bytes | bytearray | memoryview) -> int:
    """Offset of the payload in a packet (PACKET_SIZE if it has none)."""
    if not packet[3] & 0x10:
        return PACKET_SIZE
    if packet[3] & 0x20:
        return min(PACKET_SIZE, 5 + packet[4])
    return 4


def pes_timestamps(packet: bytes | memoryview) -> tuple[int, int] | None:
    """(PTS, DTS) of the PES that starts in this packet (DTS = PTS if absent)."""
    if not packet[1] & 0x40:
        return None
    pos = _payload_start(packet)
    if pos + 14 > PACKET_SIZE or packet[pos : pos + 3] != b"\x00\x00\x01":
        return None
    flags = packet[pos + 7]
    if not flags & 0x80:
        return None
    pts = _timestamp(packet, pos + 9)
    if flags & 0x40 and pos + 19 <= PACKET_SIZE:
        return pts, _timestamp(packet, pos + 14)
    return pts, pts


def _pes_size(packet: bytes | memoryview) -> int:
    """Bytes of the PES that starts here: -1 unbounded, 0 not a PES (a section)."""
    pos = _payload_start(packet)
    if pos + 6 > PACKET_SIZE or packet[pos : pos + 3] != b"\x00\x00\x01":
        return 0
    length = (packet[pos + 4] << 8) | packet[pos + 5]
    return length + 6 if length else -1


def _flagged(packet: bytes | bytearray | memoryview) -> tuple[bool, bool]:
    """(random_access_indicator, discontinuity_indicator) of a packet."""
    if not packet[3] & 0x20 or not packet[4]:
        return False, False
    return bool(packet[5] & 0x40), bool(packet[5] & 0x80)


@dataclass(frozen=True, slots=True)
class Segment:
    """One media segment."""

    seq: int
    data: bytes
    duration: float
    discontinuity: bool
    started: datetime


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


@dataclass(slots=True)
class _Building:
    """A segment being filled."""

    data: bytearray
    discontinuity: bool
    started: datetime
    start: int | None = None  # clock (DTS) of its first video PES
    clock: int | None = None  # newest video DTS
    frame: int = 0  # ticks between the last two video PES
    # PIDs whose PES started in this segment: (offset of that start, PES size).
    pes: dict[int, tuple[int, int]] = field(default_factory=dict)
    duration: float | None = None
    # Header tables whose counter waits for the stream's next table: PID -> offset.
    tables: dict[int, int] = field(default_factory=dict)
    # PES still missing their tails: PID -> bytes to come (-1: until the next start).
    open: dict[int, int] = field(default_factory=dict)


class Segmenter:
    """Cuts a TS byte stream (as a viewer receives it) into HLS segments."""

    def __init__(
        self,
        target_duration: float = 3.0,
        window: int = 8,
        max_bytes: int = MAX_SEGMENT_BYTES,
    ) -> None:
        """Aim for ``target_duration`` segments; keep at least ``window`` of them."""
        self.target_duration = target_duration
        self.target = playlist_target(target_duration)
        self.window = window
        self.max_bytes = max_bytes
        self.segments: deque[Segment] = deque()
        self.next_seq = 0
        # Discontinuities that left the window: #EXT-X-DISCONTINUITY-SEQUENCE.
        self.discontinuity_seq = 0
        self.stats = SegmenterStats()
        self.program = ProgramInfo()
        self.cut = asyncio.Event()
        self._limit = int((self.target + 0.5 - SAFETY) * PTS_HZ)
        self._target_ticks = int(target_duration * PTS_HZ)
        self._startup_ticks = int(min(target_duration, STARTUP_SEGMENT) * PTS_HZ)
        self._pat = b""
        self._pmt = b""
        self._building: _Building | None = None
        self._closing: _Building | None = None
        self._discontinuity = False
        self._last_key: int | None = None
        self._key_interval = 0
        self._frame = 0
        # PIDs whose packets need no look (their PES started in this segment).
        self._plain: set[int] = set()
        # Output timestamps = source + shift (mod 2**33): set at discontinuities.
        self._shift = 0
        self._raw_clock: int | None = None
        self._video_end: int | None = None
        self._audio_end: int | None = None
        self._restarted = False
        self._pats = 0  # PATs since the start: the first is the viewer's header
        # What times segments: the video PID (or the first timed stream if none).
        self._clock_pid: int | None = None

    # -- input -----------------------------------------------------------------------

    def resume(self) -> None:
        """The consumer rejoins after a pause: what follows is discontinuous."""
        if self._closing is not None:
            self._finish_closing()
        self._building = None
        self._plain = set()
        self._pats = 0
        self._discontinuity = bool(self.segments) or self.next_seq > 0

    def feed(self, data: bytes | memoryview) -> None:
        """Consume aligned TS (what a viewer is sent)."""
        if data is KEEPALIVE:
            return
        chunk = bytes(data)
        size = len(chunk) - len(chunk) % PACKET_SIZE
        plain = self._plain
        run = pos = 0
        while pos < size:
            b1 = chunk[pos + 1]
            if (
                not b1 & 0x40
                and not chunk[pos + 3] & 0x20
                and ((b1 & 0x1F) << 8 | chunk[pos + 2]) in plain
            ):
                pos += PACKET_SIZE  # the common case: more of a started PES
                continue
            if run < pos and self._building is not None:
                self._building.data += chunk[run:pos]
            self._packet(chunk[pos : pos + PACKET_SIZE])
            plain = self._plain
            pos += PACKET_SIZE
            run = pos
        building = self._building
        if building is not None:
            if run < size:
                building.data += chunk[run:size]
            if len(building.data) > self.max_bytes:
                self.stats.byte_cuts += 1
                self._cut(None, discontinuity=False)

    def _packet(self, packet: bytes) -> None:
        """A packet that needs a look: a PES start, a table, or a PES tail."""
        pid = (packet[1] & 0x1F) << 8 | packet[2]
        if pid == NULL_PID:
            return
        start = bool(packet[1] & 0x40)
        video = pid == self._clock_pid or (start and self._clocks(pid, packet))
        if self._shift and (start or packet[3] & 0x20) and not (start and video):
            packet = _retime(packet, self._shift)  # a video start: see _video
        if pid in (PAT_PID, self.program.pmt_pid):
            self._table(pid, packet, start)
            return
        if self._tail(pid, packet, start):
            return
        if video:
            if start and self._video(pid, packet):
                return
            if not packet[3] & 0x10 and _flagged(packet)[1]:
                # The broadcaster's mark of an upstream restart: the next frame
                # starts anew, whatever its timestamps say.
                self._restarted = True
        building = self._building
        if building is None:
            return
        if start:
            building.pes[pid] = (len(building.data), _pes_size(packet))
            building.data += packet
            self._plain.add(pid)
            stamps = pes_timestamps(packet)
            if stamps is not None:
                self._audio_end = stamps[0]
        elif pid in self._plain:
            building.data += packet  # one with an adaptation field
        else:
            # The rest of a PES whose start this segment does not have.
            self.stats.orphan_packets += 1

    def _clocks(self, pid: int, packet: bytes) -> bool:
        """Whether a PES start makes its PID the clock: a program without video
        (radio) is timed by its first stream with timestamps."""
        if (
            self._clock_pid is None
            and self.program.video_pid is None
            and self.program.complete
            and pes_timestamps(packet) is not None
        ):
            self._clock_pid = pid
            return True
        return False

    def _table(self, pid: int, packet: bytes, start: bool) -> None:
        program = self.program
        if start:
            if pid == PAT_PID:
                if program.pat is None or program.pat[4:] != packet[4:]:
                    program.reset()
                    program.scan(packet)
                    self._clock_pid = None
                self._pat = packet
                self._pats += 1
                building = self._building
                if (
                    building is not None
                    and building.clock is not None
                    and building.start is not None
                    and self._no_keyframes(building.clock)
                    and ticks(building.start, building.clock) + self._frame
                    >= self._target()
                ):
                    # No keyframe flags: cut at the PAT. The segment header
                    # replaces the packet itself.
                    self.stats.pat_cuts += 1
                    self._cut(None, discontinuity=False)
                    return
            else:
                if program.pmt is None or program.pmt[4:] != packet[4:]:
                    program.pmt = None
                    program.scan(packet)
                    self._clock_pid = program.video_pid
                self._pmt = packet
            building = self._building
            if building is not None and pid in building.tables:
                # The header's copy leads into this one, whatever came before.
                offset = building.tables.pop(pid) + 3
                data = building.data
                data[offset] = (data[offset] & 0xF0) | ((packet[3] - 1) & 0x0F)
        if self._building is not None:
            self._building.data += packet

    def _video(self, pid: int, packet: bytes) -> bool:
        """A video PES starts: time it, maybe cut before it. False: no timestamp."""
        stamps = pes_timestamps(packet)
        if stamps is None:
            return False
        raw = stamps[1]
        keyframe, flagged = _flagged(packet)
        flagged |= self._restarted
        self._restarted = False
        building = self._building
        if building is None and not keyframe and self._pats < 2:
            # No keyframe flag: start after a PAT of the stream itself (the first
            # one is the viewer's header), where a decoder can start.
            return False
        previous, self._raw_clock = self._raw_clock, raw
        step = ticks(previous, raw) if previous is not None else 0
        jumped = step < -PTS_HZ or step > JUMP_SECONDS * PTS_HZ
        if building is None:
            if self._discontinuity:
                self._rebase(raw)
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            self._begin(clock, self._discontinuity)
        elif building.start is not None and (flagged or jumped):
            self.stats.discontinuities += 1
            duration = self._drop_unfinished(building)
            self._rebase(raw)
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            self._cut(clock, discontinuity=True, duration=duration)
        else:
            clock = (raw + self._shift) % PTS_WRAP
            self._track_keyframe(clock, keyframe)
            if building.start is None:
                self._started(building, clock)
            elif self._should_cut(building, clock, keyframe):
                self._cut(clock, discontinuity=False)
            else:
                if step > 0:
                    building.frame = self._frame = step
                building.clock = clock
                if self._closing is not None:
                    self._maybe_finish_closing()
        self._video_end = clock
        if self._shift:
            packet = _retime(packet, self._shift)
        building = self._building
        assert building is not None
        building.pes[pid] = (len(building.data), -1)
        building.data += packet
        self._plain.add(pid)
        return True

    def _track_keyframe(self, clock: int, keyframe: bool) -> None:
        if keyframe:
            if self._last_key is not None:
                interval = ticks(self._last_key, clock)
                if 0 < interval <= self._limit:
                    self._key_interval = interval
            self._last_key = clock

    def _rebase(self, raw: int) -> None:
        """After a discontinuity timestamps go on from where the output was.

        Players that read segments as one stream (ffmpeg) need them monotonic;
        the gap leaves room for audio muxed ahead of the new session's video.
        """
        end = self._video_end
        if end is None:
            return
        if self._audio_end is not None and ticks(end, self._audio_end) > 0:
            end = self._audio_end
        self._shift = (end + int(REBASE_GAP * PTS_HZ) - raw) % PTS_WRAP

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
        if self.next_seq == 0 and self._closing is None:
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

    # -- cutting ---------------------------------------------------------------------

    def _begin(self, clock: int | None, discontinuity: bool) -> None:
        """Start a segment (header first) at the packet being processed."""
        now = datetime.now(UTC)
        previous = self.segments[-1] if self.segments else None
        started = now
        if previous is not None:
            # Never before the end of the previous segment.
            started = max(now, previous.started + timedelta(seconds=previous.duration))
        building = _Building(bytearray(self._pat + self._pmt), discontinuity, started)
        if self._pat and self._pmt and self.program.pmt_pid is not None:
            building.tables = {PAT_PID: 0, self.program.pmt_pid: len(self._pat)}
        self._building = building
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
            self._begin(clock, self.next_seq > 0)
            return
        building.open = self._open_pes(building, clock)
        self._closing = building
        self._begin(clock, False)

    def _trim_tables(self, building: _Building) -> None:
        """Tables (or discontinuity flags) right before the cut go with the next."""
        data = building.data
        header = len(self._pat) + len(self._pmt)
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
        if closing.open:
            building = self._building
            if (
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
        segments = self.segments
        segments.append(
            Segment(
                self.next_seq,
                bytes(building.data),
                duration,
                building.discontinuity,
                building.started,
            )
        )
        self.next_seq += 1
        # RFC 8216 6.2.2: the playlist keeps at least three target durations.
        while len(segments) > self.window and (
            sum(s.duration for s in segments) - segments[0].duration >= 3 * self.target
        ):
            if segments.popleft().discontinuity:
                self.discontinuity_seq += 1
        cut, self.cut = self.cut, asyncio.Event()
        cut.set()

    # -- output ----------------------------------------------------------------------

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
        self._viewer: Viewer | None = None
        self._skips = 0
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
            viewer = broadcaster.join(internal=True)
            if self._task is not None:
                self.segmenter.resume()
            self._viewer = viewer
            self._skips = 0
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
            self.segmenter.resume()
        self.segmenter.feed(data)

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
